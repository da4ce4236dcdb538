from __future__ import annotations

from aims_agent.collectors.logtail import LogTail


def write(path, *lines, mode="ab"):
    with path.open(mode) as fh:
        for line in lines:
            fh.write(line)


def test_reads_complete_lines_only(tmp_path):
    log = tmp_path / "pred.log"
    write(log, b'{"a":1}\n{"a":2}\n{"a":', mode="wb")
    with LogTail(log, None) as tail:
        assert tail.read() == [b'{"a":1}', b'{"a":2}']
        assert tail.read() == []
        write(log, b"3}\n")
        assert tail.read() == [b'{"a":3}']
        assert tail.position.offset == log.stat().st_size


def test_rename_rotation_drains_the_old_file_first(tmp_path):
    log = tmp_path / "pred.log"
    write(log, b"1\n", mode="wb")
    with LogTail(log, None) as tail:
        assert tail.read() == [b"1"]
        write(log, b"2\n3")  # written before rotation, last line without newline
        log.rename(tmp_path / "pred.log.1")
        write(log, b"4\n", mode="wb")
        assert tail.read() == [b"2", b"3", b"4"]


def test_copytruncate_starts_again_at_zero(tmp_path):
    log = tmp_path / "pred.log"
    write(log, b"1\n2\n", mode="wb")
    with LogTail(log, None) as tail:
        assert tail.read() == [b"1", b"2"]
        (tmp_path / "pred.log.1").write_bytes(log.read_bytes())
        write(log, b"", mode="wb")  # truncate
        write(log, b"3\n")
        assert tail.read() == [b"3"]


def test_restart_from_a_checkpoint_finds_the_rotated_file_by_inode(tmp_path):
    log = tmp_path / "pred.log"
    write(log, b"1\n2\n", mode="wb")
    with LogTail(log, None) as first:
        assert first.read() == [b"1", b"2"]
        checkpoint = first.position
        first.close()
        write(log, b"3\n")  # appended while the agent was down, then rotated
        log.rename(tmp_path / "pred.log.1")
        write(log, b"4\n", mode="wb")
    with LogTail(log, checkpoint) as again:
        assert again.read() == [b"3", b"4"]


def test_missing_file_is_waited_for(tmp_path):
    log = tmp_path / "pred.log"
    with LogTail(log, None) as tail:
        assert tail.read() == []
        write(log, b"1\n", mode="wb")
        assert tail.read() == [b"1"]
