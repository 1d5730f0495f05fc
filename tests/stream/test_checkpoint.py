"""The commit sequence: only what is done is committed, and only after the producer flushed."""

from __future__ import annotations

import pytest
from kafka import TopicPartition
from kafka.errors import CommitFailedError, KafkaTimeoutError

from worker.stream.checkpoint import Checkpoint, PublishError

TP = TopicPartition("feedback", 0)
OTHER = TopicPartition("feedback", 1)


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    def commit(self, offsets):
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})


class FakeProducer:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def flush(self):
        self.log.append("flush")


@pytest.fixture
def checkpoint() -> Checkpoint:
    return Checkpoint(FakeConsumer(), FakeProducer([]), interval_s=1.0)


def test_commits_one_past_the_last_event_when_nothing_waits(checkpoint):
    for offset in range(5):
        checkpoint.seen(TP, offset)
    assert checkpoint.commit() == {TP: 5}


def test_an_alert_still_waiting_holds_the_position_even_if_later_ones_are_done(checkpoint):
    holds = {}
    for offset in range(5):
        state = checkpoint.seen(TP, offset)
        if offset in (1, 3):
            holds[offset] = checkpoint.hold(state, offset)
    assert checkpoint.commit() == {TP: 1}
    holds[3].release()  # out of order: 3 before 1
    assert checkpoint.commit() == {}  # still held at 1: nothing new to commit
    holds[1].release()
    holds[1].release()  # a second release is a no-op, not another event's
    assert checkpoint.commit() == {TP: 5}


def test_two_holds_of_one_offset_are_released_one_by_one(checkpoint):
    """An action that asked for a note and a card update: its offset waits for both."""
    state = checkpoint.seen(TP, 0)
    note, card = checkpoint.hold(state, 0), checkpoint.hold(state, 0)
    note.release()
    assert checkpoint.commit() == {TP: 0}  # still held at 0
    card.release()
    assert checkpoint.commit() == {TP: 1}


def test_the_producer_is_flushed_before_offsets_are_committed():
    log: list[str] = []

    class RecordingConsumer(FakeConsumer):
        def commit(self, offsets):
            log.append("commit")

    checkpoint = Checkpoint(RecordingConsumer(), FakeProducer(log), interval_s=1.0)
    checkpoint.seen(TP, 0)
    checkpoint.commit()
    assert log == ["flush", "commit"]


def test_a_failed_send_refuses_the_commit(checkpoint):
    checkpoint.seen(TP, 0)
    checkpoint.on_send_error(RuntimeError("broker said no"))
    with pytest.raises(PublishError, match="broker said no"):
        checkpoint.commit()
    assert checkpoint.consumer.commits == []


def test_partitions_are_independent_and_revoked_ones_are_abandoned(checkpoint):
    state = checkpoint.seen(TP, 0)
    hold = checkpoint.hold(state, 0)
    checkpoint.seen(OTHER, 7)
    assert checkpoint.commit() == {TP: 0, OTHER: 8}
    checkpoint.forget([TP])
    assert state.abandon.is_set() and hold.abandon.is_set()
    hold.release()  # an outcome arriving after the revoke is ignored
    assert checkpoint.commit() == {}
    assert checkpoint.waiting == 0


@pytest.mark.parametrize("error", [CommitFailedError("UnknownMemberIdError"), KafkaTimeoutError("coordinator unreachable")])
def test_a_commit_the_group_refused_or_that_timed_out_is_retried_later_not_fatal(error):
    """A worker evicted from its group while its network stalled gets CommitFailedError when it comes back;
    it must keep running (found by tests/faults): nothing was committed, so the next commit tries again."""

    class RefusingConsumer(FakeConsumer):
        refuse = True

        def commit(self, offsets):
            if self.refuse:
                raise error
            super().commit(offsets)

    consumer = RefusingConsumer()
    checkpoint = Checkpoint(consumer, FakeProducer([]), interval_s=1.0)
    for offset in range(3):
        checkpoint.seen(TP, offset)
    assert checkpoint.commit() == {}
    consumer.refuse = False
    assert checkpoint.commit() == {TP: 3}


class SeekingConsumer(FakeConsumer):
    def __init__(self) -> None:
        super().__init__()
        self.seeks: list[tuple[TopicPartition, int]] = []

    def seek(self, tp, offset):
        self.seeks.append((tp, offset))


def test_a_partition_given_up_and_assigned_again_is_fetched_again_from_the_first_event_not_done():
    """kafka-python keeps the fetch position of a partition revoked and assigned again in one rebalance;
    the events given up at the revoke (a digest still gathering) must be fetched again (found by tests/faults)."""

    consumer = SeekingConsumer()
    checkpoint = Checkpoint(consumer, FakeProducer([]), interval_s=1.0)
    for offset in range(5):
        state = checkpoint.seen(TP, offset)
        if offset == 2:
            checkpoint.hold(state, offset)  # a note waiting for its alert when the partitions are revoked
    for offset in range(3):
        checkpoint.seen(OTHER, offset)
    checkpoint.forget([TP, OTHER])
    checkpoint.rewind([TP])  # TP comes back; OTHER went to another worker
    assert consumer.seeks == [(TP, 2)]
    checkpoint.rewind([OTHER])  # later, OTHER comes back after another worker had it: its committed offset rules
    assert consumer.seeks == [(TP, 2)]


def test_a_partition_lost_to_an_eviction_and_assigned_back_starts_from_its_committed_offset():
    """Evicted (its network stalled), the worker lost the partition; another member had it and went on. When it is
    assigned back, going back to where this worker stopped would redo the other member's work (found by tests/faults:
    answers posted twice). kafka-python starts it from the committed offset: no seek."""

    consumer = SeekingConsumer()
    checkpoint = Checkpoint(consumer, FakeProducer([]), interval_s=1.0)
    for offset in range(5):
        state = checkpoint.seen(TP, offset)
        if offset == 2:
            checkpoint.hold(state, offset)  # an alert waiting for its pool's member when the network stalled
    checkpoint.forget([TP], revoked=False)
    assert state.abandon.is_set()
    checkpoint.rewind([TP])
    assert consumer.seeks == []


def test_a_hold_from_before_a_partition_was_given_up_and_assigned_back_does_not_release_the_new_assignments_offset(
    checkpoint,
):
    """An outcome (a Slack answer) arriving after the partition was revoked and assigned back releases the hold it was
    for: that hold belongs to the old assignment's bookkeeping, so the same offset held again in the new one stays held."""
    old = checkpoint.hold(checkpoint.seen(TP, 0), 0)
    checkpoint.forget([TP])  # revoked: the hold's partition state is given up (its abandon set)
    assert old.abandon.is_set()
    checkpoint.assigned([TP])
    again = checkpoint.hold(checkpoint.seen(TP, 0), 0)  # refetched in the new assignment, held again
    old.release()  # the late outcome of the old assignment's post
    assert checkpoint.commit() == {TP: 0}, "offset 0 is still held in the new assignment: nothing past it committed"
    again.release()
    assert checkpoint.commit() == {TP: 1}
