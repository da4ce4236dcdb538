"""OSCAL assessment results (NIST OSCAL 1.2.1, JSON) from the evidence store, for one period.

    monitoring record (clause 9.1) -> observation: methods TEST, the agent as origin (tool), the
                                      model as subject (component), the record as evidence
    nonconformity (clause 10.2)    -> finding on `objective-id` of its primary Annex A control
                                      (`a.6.2.6`): not-satisfied until closed (or rejected)
    its effect                     -> risk: status from the lifecycle, corrective action and
                                      reaction as remediations, the record's events as risk log

Only plain dicts: trestle, which validates the output in the tests, is a dev dependency. Every
uuid is a uuid5 of an evidence id and every time comes from the evidence, so the same evidence
exports to the same bytes. A nonconformity is shown as it stood at the end of the period: its
status from its events; a clause 10.2 field first set later is left out, one changed later is
shown as last recorded (the store keeps no older value) and says so. ISO clause ids, which are
no OSCAL tokens, and EU AI Act / NIST AI RMF tags are `props` in the namespace `NS`.
"""

from __future__ import annotations

from aims_agent.exporters.oscal.common import NS, OSCAL_VERSION, control_id
from aims_agent.exporters.oscal.results import assessment_results

__all__ = ["NS", "OSCAL_VERSION", "assessment_results", "control_id"]
