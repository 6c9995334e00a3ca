"""The feedback join: any arrival order, duplicates, early and late feedback give the batch answer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.state.codec import decode, encode
from monitor.core.state.feedback import Answers, FeedbackJoin, Truth, score
from monitor.core.state.outcomes import Outcomes

CLASSES = ("invoice", "contract", "other")


@st.composite
def requests(draw: st.DrawFn) -> list[tuple[str, Answers, Truth | None]]:
    n = draw(st.integers(min_value=0, max_value=25))
    out = []
    for i in range(n):
        answers = Answers(float(i), draw(st.sampled_from(CLASSES)), draw(st.sampled_from(CLASSES)), "v2")
        kind = draw(st.sampled_from(["label", "correct", "none"]))
        truth: Truth | None
        if kind == "label":
            truth = Truth(float(i) + 5, draw(st.sampled_from(CLASSES)), None, "user")
        elif kind == "correct":
            truth = Truth(float(i) + 5, None, draw(st.booleans()), "user")
        else:
            truth = None
        out.append((f"r{i}", answers, truth))
    return out


def batch(reqs: list[tuple[str, Answers, Truth | None]]) -> Outcomes:
    """What the join must give: each request with a truth scored once."""
    outcomes = Outcomes()
    for _, answers, truth in reqs:
        if truth is not None:
            outcomes.add(score(answers, truth))
    return outcomes


@settings(max_examples=200)
@given(requests(), st.data())
def test_any_order_with_duplicates_scores_like_the_batch(
    reqs: list[tuple[str, Answers, Truth | None]], data: st.DataObject
) -> None:
    events: list[tuple[str, str, object]] = []
    for rid, answers, truth in reqs:
        events.append(("answers", rid, answers))
        if truth is not None:
            events.append(("truth", rid, truth))
            if data.draw(st.booleans()):
                events.append(("truth", rid, truth))  # delivered twice
    order = data.draw(st.permutations(events))
    join = FeedbackJoin(max_requests=1000, ttl_s=1e9)
    outcomes = Outcomes()
    duplicates = 0
    seen_truth: set[str] = set()
    for kind, rid, item in order:
        if kind == "answers":
            assert isinstance(item, Answers)
            scored = join.add_answers(rid, item)
        else:
            assert isinstance(item, Truth)
            if rid in seen_truth:
                duplicates += 1
            seen_truth.add(rid)
            scored = join.add_truth(rid, item)
        if scored is not None:
            outcomes.add(scored)
    assert outcomes == batch(reqs)
    assert join.stats.duplicates == duplicates
    assert join.stats.matched == sum(1 for _, _, truth in reqs if truth is not None)


def test_correct_flag_judges_the_canary_where_it_can() -> None:
    truth_right = Truth(1.0, None, True, "user")
    truth_wrong = Truth(1.0, None, False, "user")
    agree = Answers(0.0, "invoice", "invoice", "v2")
    differ = Answers(0.0, "invoice", "other", "v2")
    assert (score(agree, truth_right).canary_right, score(differ, truth_right).canary_right) == (True, False)
    assert score(agree, truth_wrong).canary_right is False
    assert score(differ, truth_wrong).canary_right is None  # waits for a spot-check label


def test_a_spotcheck_label_settles_an_open_canary_side_once() -> None:
    join = FeedbackJoin(max_requests=10, ttl_s=1e9)
    outcomes = Outcomes()
    join.add_answers("r1", Answers(0.0, "invoice", "other", "v2"))
    first = join.add_truth("r1", Truth(1.0, None, False, "user"))
    assert first is not None and first.canary_right is None
    outcomes.add(first)
    assert outcomes.unresolved == 1
    settled = join.add_truth("r1", Truth(2.0, "other", None, "spotcheck"))
    assert settled is not None and settled.canary_right is True and settled.canary_only
    outcomes.add(settled)
    assert (outcomes.unresolved, outcomes.spotcheck) == (0, 1)
    assert outcomes.live_labelled.total == 1 and outcomes.canary_correct.total == 1
    assert join.add_truth("r1", Truth(3.0, "other", None, "spotcheck")) is None
    assert join.stats.duplicates == 1


def test_feedback_that_never_meets_its_request_expires_and_is_counted() -> None:
    join = FeedbackJoin(max_requests=10, ttl_s=100.0)
    join.add_truth("ghost", Truth(0.0, "invoice", None, "user"))
    join.expire(50.0)
    assert join.stats.expired == 0
    join.expire(101.0)
    assert join.stats.expired == 1 and not join.early


def test_round_trip_and_merge() -> None:
    a, b = FeedbackJoin(10, 1e9), FeedbackJoin(10, 1e9)
    a.add_answers("r1", Answers(0.0, "invoice", "other", "v2"))
    b.add_truth("r2", Truth(1.0, "other", None, "user"))
    assert decode(encode(a), FeedbackJoin) == a
    merged = a.merge(b)
    assert set(merged.answered) == {"r1"} and set(merged.early) == {"r2"}
