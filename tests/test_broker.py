"""The embedded broker writes each message whole before a worker can see it."""

from __future__ import annotations

import os

from kombu import Connection


def broker(tmp_path, folder) -> Connection:
    """A connection to Kotak's embedded broker keeping its messages in `folder`."""
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(tmp_path / "control"),
    }
    return Connection(
        "filesystem://", transport="webmail.broker:Transport", transport_options=options
    )


def test_messages_go_through_and_a_reader_never_sees_a_partial_file(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    with broker(tmp_path, folder) as connection:
        queue = connection.SimpleQueue("kotak-test")
        queue.put({"n": 1})
        # Only whole messages carry the ".msg" name a reader picks up.
        names = os.listdir(folder)
        assert len(names) == 1 and names[0].endswith(".kotak-test.msg")
        assert not any(name.endswith(".part") for name in names)
        message = queue.get(timeout=2)
        assert message.payload == {"n": 1}
        message.ack()
        queue.close()


def test_a_file_still_being_written_is_not_read(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    (folder / "1_x.kotak-test.msg.part").write_bytes(b"")  # half-written, as a writer leaves it
    with broker(tmp_path, folder) as connection:
        queue = connection.SimpleQueue("kotak-test")
        try:
            queue.get(timeout=0.3)
            raise AssertionError("a partial file was read as a message")
        except queue.Empty:
            pass
        queue.close()


def test_the_embedded_broker_warns_of_no_missing_hostname(tmp_path, caplog):
    folder = tmp_path / "queue"
    folder.mkdir()
    # A clone is what Celery's producer pool makes before each task it sends.
    with (
        caplog.at_level("WARNING", logger="kombu.connection"),
        broker(tmp_path, folder) as conn,
        conn.clone() as copy,
    ):
        copy.SimpleQueue("kotak-test").close()
    assert "hostname" not in caplog.text
