"""The dispatch order of ``ablate``'s jobs (unigrounding/scheduling.py)."""

from itertools import permutations

import pytest

from unigrounding.ablate.scheduling import EXHAUSTIVE_UP_TO, dispatch_order, finish_time

CHAIN = ("proposer.py", "quantizer.py")
# train seconds of the six codecs and the stage chain in one quick ablation
SECONDS = {
    CHAIN: 320,
    "region_proxy": 437,
    "trp": 448,
    "token_collective": 475,
    "gnd_query": 381,
    "grid_offset": 272,
    "text_coords": 271,
}
AFTER = {"region_proxy": CHAIN, "token_collective": CHAIN}


def test_finish_time_by_hand():
    seconds = {"a": 3.0, "b": 1.0, "c": 1.0}
    assert finish_time(["a", "b", "c"], seconds, {}, 2) == 3.0  # a | b, c
    assert finish_time(["b", "c", "a"], seconds, {}, 2) == 4.0  # b, a | c
    assert finish_time(["a", "b", "c"], seconds, {}, 1) == 5.0


def test_a_lane_with_nothing_ready_waits_for_the_prerequisite():
    seconds = {"chain": 2.0, "x": 1.0}
    # x needs the chain: the second lane idles until t = 2, then x runs to 3
    assert finish_time(["chain", "x"], seconds, {"x": "chain"}, 2) == 3.0
    assert finish_time(["x", "chain"], seconds, {"x": "chain"}, 2) == 3.0


def test_order_is_the_best_of_all_orders():
    order = dispatch_order(SECONDS, AFTER, 2)
    assert sorted(order, key=str) == sorted(SECONDS, key=str)
    best = min(finish_time(o, SECONDS, AFTER, 2) for o in permutations(SECONDS))
    assert finish_time(order, SECONDS, AFTER, 2) == pytest.approx(best)
    # chains first, then the longest codecs, as the ablation used to order them
    old = [CHAIN, "region_proxy", "token_collective", "trp", "gnd_query"]
    old += ["grid_offset", "text_coords"]
    assert finish_time(order, SECONDS, AFTER, 2) < finish_time(old, SECONDS, AFTER, 2) - 60


def test_many_jobs_go_longest_first_with_prerequisites_before_their_dependents():
    seconds = {f"job{i}": float(i) for i in range(EXHAUSTIVE_UP_TO + 1)}
    seconds["chain"] = 0.5
    after = {"job3": "chain"}
    order = dispatch_order(seconds, after, 2)
    assert order[0] == "chain"
    assert order[1:] == sorted((j for j in seconds if j != "chain"), key=lambda j: -seconds[j])


def test_one_lane_and_no_jobs():
    assert finish_time([], {}, {}, 2) == 0.0
    assert dispatch_order({}, {}, 2) == []
    order = dispatch_order({"a": 1.0, "b": 2.0}, {}, 1)
    assert finish_time(order, {"a": 1.0, "b": 2.0}, {}, 1) == 3.0
