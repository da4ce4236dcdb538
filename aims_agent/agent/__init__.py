"""The agent process: config, HTTP app, scheduler, window store, judge, CLI. It wires the rest."""
