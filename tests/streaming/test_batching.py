"""How a stage worker sizes its batches (``pipeline.streaming.batching``), without a broker."""

import dataclasses

import pytest

from pipeline.stages.base import Stage
from pipeline.streaming.batching import BatchAllowance, BatchSizer, cut_in_pieces
from pipeline.streaming.worker import BATCH_MAX, SinkProcessor, StageProcessor, batch_sizer


def test_a_batch_takes_what_the_stage_works_through_in_the_target_time():
    sizer = BatchSizer(target_s=0.1, most=200, least=2)
    assert sizer.size() == 2  # nothing measured yet: the fewest
    sizer.observe(2, 0.028)  # 14 ms a record
    assert sizer.size() == 7
    for _ in range(20):
        sizer.observe(7, 7 * 0.014)
    assert sizer.size() == 7
    for _ in range(20):  # a cheap stage takes many, up to the most
        sizer.observe(200, 200 * 0.0002)
    assert sizer.size() == 200
    for _ in range(40):  # records that became far dearer than the target: followed, to the fewest
        sizer.observe(2, 2 * 0.3)
    assert sizer.size() == 2


def test_one_slow_record_moves_the_estimate_less_than_a_batch_of_slow_records():
    def settled():
        sizer = BatchSizer(target_s=0.1, most=200)
        for _ in range(10):
            sizer.observe(10, 10 * 0.012)
        return sizer

    usual = settled().size()
    assert usual == 8
    lone, many = settled(), settled()
    lone.observe(1, 2.0)  # a language's model loading with the record
    many.observe(16, 16 * 2.0)
    assert 1 <= many.size() < lone.size() < usual
    for _ in range(30):  # back to the stage's usual cost: the batches grow back
        many.observe(many.size(), many.size() * 0.012)
    assert many.size() == usual


def test_a_batch_whose_first_record_has_waited_long_takes_more():
    sizer = BatchSizer(target_s=0.1, most=200, waited_share=0.5)
    sizer.observe(10, 10 * 0.02)  # 20 ms a record: 5 in 0.1 s
    assert sizer.size() == sizer.size(0.05) == 5  # a short wait: the target
    assert sizer.size(1.0) == 25  # waited 1 s: holds it half a second more at most
    assert sizer.size(60.0) == 200  # a backlog of a minute: the most
    assert BatchSizer(target_s=0.1, most=200).size(60.0) == 1  # nothing measured yet: the fewest
    none = BatchSizer(target_s=0.1, most=200, waited_share=0.0)
    none.observe(10, 10 * 0.02)
    assert none.size(60.0) == 5


def test_no_target_means_the_most_and_bad_arguments_are_refused():
    sizer = BatchSizer(target_s=0.0, most=20)
    sizer.observe(5, 50.0)
    assert sizer.size() == 20
    free = BatchSizer(target_s=0.1, most=50)
    free.observe(10, 0.0)  # too fast to measure
    assert free.size() == 50
    assert BatchSizer(target_s=0.1, most=3, least=8).size() == 3  # the most wins
    for bad in ({"most": 0}, {"least": 0}, {"memory": 0}, {"target_s": -1.0}, {"waited_share": -0.5}):
        with pytest.raises(ValueError):
            BatchSizer(**{"target_s": 0.1, "most": 10, **bad})


def test_a_batch_sized_by_bytes_holds_few_long_records_and_many_short_ones():
    sizer = BatchSizer(target_s=0.1, most=200)
    sizer.observe(4, 0.4, units=40_000)  # 10 us a byte: 10,000 bytes in 0.1 s
    assert sizer.budget() == pytest.approx(10_000) and sizer.budget(1.0) == pytest.approx(50_000)

    def taken(lengths, waited_s=0.0):
        allowance = sizer.allowance(waited_s, weigh=len)
        batch = []
        for n in lengths:  # as take_batches: the first refused begins the next batch
            if not allowance.takes("x" * n):
                break
            batch.append(n)
        return batch, allowance

    short, allowance = taken([1_000] * 30)
    assert len(short) == 10 and allowance.used == 10_000
    long, _ = taken([8_000, 3_000, 500])  # the second would pass the budget: it begins the next batch
    assert long == [8_000]
    assert taken([30_000, 10])[0] == [30_000]  # one record longer than the budget: alone
    assert len(taken([1_000] * 300, waited_s=60.0)[0]) == 200  # a backlog: the most

    first = BatchSizer(target_s=0.1, most=200, least=3).allowance(weigh=len)  # nothing measured: the fewest
    assert [first.takes("x" * 10) for _ in range(4)] == [True, True, True, False]
    counted = BatchAllowance(2)  # no weights: records
    assert [counted.takes("a long one" * 1000) for _ in range(3)] == [True, True, False]


def test_a_long_record_moves_a_sizer_by_bytes_by_what_it_costs_per_byte():
    sizer = BatchSizer(target_s=0.1, most=200)
    for _ in range(20):
        sizer.observe(5, 0.05, units=5_000)  # 10 us a byte
    sizer.observe(1, 0.8, units=80_000)  # 80 KB in 0.8 s: as dear per byte as the rest
    assert sizer.budget() == pytest.approx(10_000)
    sizer.observe(3, 0.0, units=0)  # nothing to learn from
    assert sizer.budget() == pytest.approx(10_000)


class Tagger(Stage):
    name = "entities"

    def process(self, record, ctx):
        return record


class Waiter(Stage):
    name = "language"
    batch_max = 20
    batches_by_time = False


def test_a_worker_sizes_a_stage_by_time_and_the_sink_and_stages_that_say_so_by_count(settings, tmp_path):
    tagger = Tagger()
    tagger.batch_least = 3
    sizer = batch_sizer(settings, StageProcessor(settings, tagger, "w"))
    assert (sizer.target_s, sizer.most, sizer.least) == (settings.run.batch_ms / 1000, BATCH_MAX, 3)
    assert settings.run.batch_ms > 0
    waiter = batch_sizer(settings, StageProcessor(settings, Waiter(), "w"))
    assert (waiter.target_s, waiter.size()) == (0.0, 20)
    sink = batch_sizer(settings, SinkProcessor(settings, [f"jsonl:{tmp_path}"], "w"))
    assert (sink.target_s, sink.size()) == (0.0, BATCH_MAX)
    off = dataclasses.replace(settings, run=dataclasses.replace(settings.run, batch_ms=0.0))
    assert batch_sizer(off, StageProcessor(off, Tagger(), "w")).size() == BATCH_MAX


def test_a_batch_is_cut_in_pieces_of_about_the_piece_time_in_order():
    items = list("abcdefg")
    weights = [10, 10, 10, 50, 10, 10, 200]
    # 1 ms a unit, pieces of 25 ms: a piece closes before the unit that would pass 25; a record
    # heavier than a piece is a piece of its own
    assert cut_in_pieces(items, weights, 0.001, 0.025) == [["a", "b"], ["c"], ["d"], ["e", "f"], ["g"]]
    assert cut_in_pieces(items, weights, None, 0.025) == [[i] for i in items]  # cost unknown: one by one
    assert cut_in_pieces(items, weights, 0.0, 0.025) == [items]  # costs nothing: one piece
    assert cut_in_pieces([], [], 0.001, 0.025) == []
    assert [i for piece in cut_in_pieces(items, weights, 0.0004, 0.025) for i in piece] == items


def test_a_batch_whose_first_record_waited_long_goes_on_in_longer_pieces():
    sizer = BatchSizer(target_s=0.1, most=200, piece_s=0.025)
    items, weights = list(range(40)), [1000] * 40
    assert BatchSizer(target_s=0.1, most=200).pieces(items, weights) == [items]  # pieces off: the batch
    assert sizer.pieces(items, weights) == [[i] for i in items]  # cost not known yet
    sizer.observe(10, 0.1, 10_000)  # 10 us a unit: 10 ms a record
    assert [len(p) for p in sizer.pieces(items, weights)] == [2] * 20  # 25 ms pieces
    assert [len(p) for p in sizer.pieces(items, weights, waited_s=0.2)] == [10] * 4  # half of 200 ms
    assert sizer.pieces(items, weights, waited_s=5.0) == [items]  # a backlog: one piece


def test_stages_that_handle_records_one_at_a_time_are_handed_on_in_pieces():
    from pipeline.stages.dedup import DedupStage
    from pipeline.stages.entities import EntitiesStage
    from pipeline.stages.language import LanguageStage

    def unbuilt(cls):  # the answer depends on the class only: no models or index needed
        return cls.__new__(cls)

    assert Tagger().one_by_one and unbuilt(LanguageStage).one_by_one and unbuilt(EntitiesStage).one_by_one
    assert not unbuilt(DedupStage).one_by_one  # one index round trip a batch


def test_only_stages_that_handle_records_one_at_a_time_get_pieces_when_configured(settings, tmp_path):
    assert settings.run.piece_ms == 0.0  # off by default: bench/pipeline/README.md
    on = dataclasses.replace(settings, run=dataclasses.replace(settings.run, piece_ms=25.0))
    assert batch_sizer(on, StageProcessor(on, Tagger(), "w")).piece_s == 0.025
    assert batch_sizer(settings, StageProcessor(settings, Tagger(), "w")).piece_s == 0.0
    assert batch_sizer(on, SinkProcessor(on, [f"jsonl:{tmp_path}"], "w")).piece_s == 0.0

    class Batched(Tagger):
        def process_many(self, records, contexts):
            return [dict(r) for r in records]

    assert batch_sizer(on, StageProcessor(on, Batched(), "w")).piece_s == 0.0


def test_each_piece_is_sent_when_done_and_a_retry_does_not_send_the_earlier_pieces_again(monkeypatch):
    import asyncio

    from pipeline.streaming import worker

    monkeypatch.setattr(worker, "RETRY_FIRST_S", 0.01)
    events: list[tuple[str, object]] = []
    failures = {"c": 2}  # "c" fails twice (a TemporaryFailure), then passes

    async def process(piece):
        events.append(("process", list(piece)))
        await asyncio.sleep(0)
        retry = [i for i in piece if failures.get(i, 0) > 0]
        for i in retry:
            failures[i] -= 1
        return [f"out-{i}" for i in piece if i not in retry], retry

    async def send(outputs):
        events.append(("send", list(outputs)))

    took = asyncio.run(worker.work_through([["a", "b"], ["c"], ["d"]], process, send))
    assert events == [("process", ["a", "b"]), ("send", ["out-a", "out-b"]),
                      ("process", ["c"]), ("send", []), ("process", ["c"]), ("send", []),
                      ("process", ["c"]), ("send", ["out-c"]),
                      ("process", ["d"]), ("send", ["out-d"])]
    assert took is None  # tried again: says nothing of the stage's cost
    events.clear()
    took = asyncio.run(worker.work_through([["x"], ["y"]], process, send))
    assert took is not None and took >= 0 and [e[0] for e in events] == ["process", "send"] * 2
