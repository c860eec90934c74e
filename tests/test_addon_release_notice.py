"""Issue 31 item 5, the add-on's side: when the backend keeps its models loaded for another
client's job, the artist is told so and why, not that memory was released."""

from addon.session import Session
from addon.wire import protocol


class OneEventClient:
    def __init__(self, event):
        self.events = [event]

    def poll(self):
        events, self.events = self.events, []
        return events


def notices_after(tmp_path, fields):
    session = Session(tmp_path)
    session.client = OneEventClient(protocol.event("released", "r1", fields))
    session._check_process = lambda: False
    session._check_protocol = lambda: False
    session.tick()
    return session.notices


def test_a_refused_release_says_why(tmp_path):
    reason = "another client's job is queued; the models stay loaded for it"
    notices = notices_after(tmp_path, {"freed": False, "reason": reason})
    assert notices == [("INFO", f"The backend kept its models loaded: {reason}")]


def test_a_release_is_acknowledged(tmp_path):
    assert notices_after(tmp_path, {"freed": True}) == [("INFO", "The backend released its model memory")]
