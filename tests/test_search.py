"""The searches end to end: beam search's choices, its EOS and cancel paths, the top-k offset,
the miditok tokenizers, and one Generator used from two threads at once."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import symusic
import torch

from conftest import REMEDIES_OFF
from tunesmith.generation import GenerationConfig, GenerationResult, Generator
from tunesmith.generation import processors as P
from tunesmith.generation.grammar import StatelessRule as StatelessRuleBase
from tunesmith.generation.grammar import make_grammar
from tunesmith.generation.search import Finished, beam_search, sample
from tunesmith.model import KVCache, ModelConfig, Transformer, preset
from tunesmith.model.decode import ReferenceDecoder
from tunesmith.tokenization import PairTokenizer, TokenKind, build_tokenizer
from tunesmith.tokenization.midi_io import grid_notes, load_midi, score_from_grid
from tunesmith.tokenization.pairs import DUR_OFFSET, PITCH_OFFSET

TOK = PairTokenizer()


def tiny_generator(style: str = "tiny", seed: int = 0, tokenizer=TOK) -> Generator:
    """Random weights; a context long enough that no test here slides the window."""
    torch.manual_seed(seed)
    model = Transformer(preset(style, tokenizer.vocab_size, context=256), pad_id=tokenizer.pad_id)
    return Generator(model, tokenizer)


@pytest.fixture(scope="module")
def prompt() -> symusic.Score:
    rows = np.array([[0, 60, 4], [0, 48, 8], [4, 64, 4], [8, 67, 4], [12, 72, 4]])
    return score_from_grid(rows, bpm=90)


def log_prob(gen: Generator, res: GenerationResult) -> float:
    """The model's log-probability of the new ids under the grammar (creativity 0), by one
    uncached forward pass over the whole piece: independent of the search loops."""
    grammar = make_grammar(gen.tokenizer, res.config)
    grammar.feed_prompt(res.ids[: res.prompt_length])
    with torch.inference_mode():
        logits = gen.model(torch.tensor([res.ids]))[0][0, res.prompt_length - 1 : -1]
    total = 0.0
    for i, token in enumerate(res.new_ids):
        masked = P.mask(logits[i : i + 1].float().numpy(), grammar.allowed())
        logp = torch.log_softmax(torch.from_numpy(masked), -1)
        total += float(logp[0, token])
        grammar.update(np.array([token]))
    return total


# --- beam search finds likelier pieces ----------------------------------------------------


class BigramModel(torch.nn.Module):
    """Logits that depend on the last token only, from a table: a model built to order."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table  # (V, V): row = last token
        self.cfg = ModelConfig(vocab_size=len(table), context=64, n_layer=1, n_head=1, d_model=1)

    def new_cache(self, batch: int = 1) -> KVCache:
        return KVCache(1, 1, 1, batch, self.cfg.context)

    def forward(self, ids, targets=None, cache=None, last_only=False, bar_pos=None):
        if cache is not None:
            cache.advance(ids.shape[1])
        logits = self.table[ids]  # (B, T, V)
        return (logits[:, -1:] if last_only else logits), None


def test_beam_finds_the_likelier_piece_that_greedy_misses() -> None:
    """Greedy takes the likeliest first note, whose duration is a coin toss among 128;
    a slightly less likely note has an almost certain duration: beam search finds it."""
    table = torch.zeros(TOK.vocab_size, TOK.vocab_size)
    a, b = PITCH_OFFSET + 60, PITCH_OFFSET + 62
    table[TOK.bos_id, a], table[TOK.bos_id, b] = 5.0, 4.5
    table[b, DUR_OFFSET + 4] = 10.0  # after a: every duration equally likely
    model = BigramModel(table)
    cfg = GenerationConfig(search="greedy", notes=1, stop_at_eos=False)
    greedy = sample(model, TOK, [TOK.bos_id], cfg, None, ReferenceDecoder(model))
    beam_cfg = GenerationConfig(search="beam", beam_width=2, notes=1, stop_at_eos=False)
    beam = beam_search(model, TOK, [TOK.bos_id], beam_cfg, None, ReferenceDecoder(model))
    assert greedy.ids[0] == a and beam.ids == [b, DUR_OFFSET + 4]

    def score(ids: list[int]) -> float:
        grammar = make_grammar(TOK, cfg)
        total, last = 0.0, TOK.bos_id
        for t in ids:
            masked = P.mask(table[last][None].numpy(), grammar.allowed())
            logp = torch.log_softmax(torch.from_numpy(masked), -1)
            total, last = total + float(logp[0, t]), t
            grammar.update(np.array([t]))
        return total

    assert score(beam.ids) > score(greedy.ids) + 3


@pytest.mark.parametrize(("style", "seed"), [("tiny", 0), ("tiny", 2), ("tiny-original", 2)])
def test_wider_beams_find_likelier_pieces_than_greedy(prompt, style, seed) -> None:
    """On these models the beam keeps greedy's path or beats it. Beam search does not
    promise this for every model: a prefix it drops may have had the best continuation."""
    gen = tiny_generator(style, seed)
    greedy = gen.generate(prompt, search="greedy", notes=20, stop_at_eos=False)
    for width in (2, 4):
        beam = gen.generate(prompt, search="beam", beam_width=width, notes=20, stop_at_eos=False)
        assert beam.stop_reason == "length" and beam.n_new_notes == 20
        assert log_prob(gen, beam) >= log_prob(gen, greedy) - 1e-3


def test_length_penalty_divides_the_score_by_length_to_its_power() -> None:
    short, long = [1] * 10, [1] * 20
    for penalty, winner in [(0.0, short), (1.0, long)]:
        finished = Finished(penalty)
        finished.add(-10.0, short, "eos")
        finished.add(-15.0, long, "length")  # -1.0 vs -0.75 per token
        assert finished.best().ids == winner


def test_length_penalty_chooses_among_the_same_finished_pieces(prompt) -> None:
    """The penalty changes only which finished piece wins: without it the likeliest, with
    it the one whose log-probability divided by length ** penalty is highest (longer here)."""
    gen = tiny_generator("tiny", 2)
    kw = {"search": "beam", "beam_width": 4, "notes": 20, "stop_at_eos": False, **REMEDIES_OFF}
    plain, penalised = gen.generate(prompt, **kw), gen.generate(prompt, length_penalty=3.0, **kw)
    assert len(penalised.new_ids) > len(plain.new_ids)
    a, b = log_prob(gen, plain), log_prob(gen, penalised)
    assert a > b
    assert b / len(penalised.new_ids) ** 3 > a / len(plain.new_ids) ** 3


# --- beam search's EOS and cancel paths ---------------------------------------------------


def test_beam_ends_at_eos_when_the_model_prefers_it(prompt) -> None:
    gen = tiny_generator("tiny-original", 0)
    with torch.no_grad():
        gen.model.head.bias[TOK.eos_id] = 2.0
    res = gen.generate(prompt, search="beam", beam_width=4, notes=20)
    assert res.stop_reason == "eos" and res.new_ids[-1] == TOK.eos_id
    assert res.n_new_notes >= 1  # EOS only once the piece has a new note
    assert TOK.eos_id not in res.new_ids[:-1]
    res = gen.generate(prompt, search="beam", beam_width=4, notes=20, stop_at_eos=False)
    assert res.stop_reason == "length" and res.n_new_notes == 20
    assert TOK.eos_id not in res.new_ids


@pytest.mark.parametrize("eos_after, notes_at_end", [(0.0, 1), (0.5, 10), (0.95, 19), (1.0, None)])
def test_the_model_ends_a_piece_only_after_eos_after_of_its_length(
    prompt, eos_after: float, notes_at_end: int | None
) -> None:
    gen = tiny_generator("tiny-original", 0)
    with torch.no_grad():
        gen.model.head.bias[TOK.eos_id] = 20.0  # the model ends the piece as soon as it may
    res = gen.generate(prompt, search="greedy", notes=20, eos_after=eos_after, **REMEDIES_OFF)
    if notes_at_end is None:  # never before the length
        assert res.stop_reason == "length" and res.n_new_notes == 20
    else:
        assert res.stop_reason == "eos" and res.n_new_notes == notes_at_end


def test_eos_after_counts_time_when_the_length_is_in_bars() -> None:
    grammar = make_grammar(TOK, GenerationConfig(bars=2, eos_after=0.5))  # from step 16 on
    grammar.feed_prompt([1])
    may_end = []
    for t in (PITCH_OFFSET + 60, DUR_OFFSET + 4, 3, DUR_OFFSET + 8, 3, DUR_OFFSET + 8):
        grammar.update(np.array([t]))
        may_end.append(bool(grammar.allowed()[0, TOK.eos_id]))
    assert may_end == [False, False, False, False, False, True]


def test_beam_cancels_when_the_callback_says_so(prompt) -> None:
    gen = tiny_generator("tiny", 1)
    seen: list[tuple[int, int]] = []

    def callback(done: int, total: int) -> bool:
        seen.append((done, total))
        return done >= 5

    res = gen.generate(
        prompt, search="beam", beam_width=3, notes=30, stop_at_eos=False, callback=callback
    )
    assert res.stop_reason == "cancelled"
    assert seen[-1][0] == 5 and all(done < 5 for done, _ in seen[:-1])
    assert all(total == 30 for _, total in seen)
    assert 1 <= res.n_new_notes <= 5  # the best row, which may trail the furthest one
    # miditok may write one pitch twice at one onset (as real files have it); the grid merges.
    assert len(grid_notes(load_midi(res.score.dumps_midi()))) == len(res.grid)


# --- the top-k offset ---------------------------------------------------------------------


def test_top_k_offset_plays_the_candidate_of_that_rank(prompt) -> None:
    """k=1 with offset 2: every new token is the third likeliest the rules allow."""
    gen = tiny_generator("tiny", 3)
    res = gen.generate(prompt, search="top_k", top_k_notes=1, top_k_durations=1,
                       top_k_offset=2, notes=20, stop_at_eos=False)  # fmt: skip
    assert res.n_new_notes == 20
    grammar = make_grammar(TOK, res.config)
    grammar.feed_prompt(res.ids[: res.prompt_length])
    with torch.inference_mode():
        logits = gen.model(torch.tensor([res.ids]))[0][0, res.prompt_length - 1 : -1]
    ranked = 0
    for i, token in enumerate(res.new_ids):
        masked = P.mask(logits[i : i + 1].numpy(), grammar.allowed())[0]
        assert np.isfinite(masked[token])
        if np.isfinite(masked).sum() > 2:
            assert int((masked > masked[token]).sum()) == 2, i
            ranked += 1
        grammar.update(np.array([token]))
    assert ranked >= len(res.new_ids) // 2


# --- the miditok tokenizers ---------------------------------------------------------------


@pytest.fixture(scope="module", params=["remi", "tsd"])
def miditok_generator(request) -> Generator:
    return tiny_generator("tiny", 0, tokenizer=build_tokenizer(request.param))


@pytest.mark.parametrize("search", ["greedy", "top_k", "top_p", "beam"])
def test_miditok_tokenizers_generate_end_to_end(miditok_generator, prompt, search) -> None:
    gen, tok = miditok_generator, miditok_generator.tokenizer
    kw = {"search": search, "notes": 12, "scale": "C:major", "seed": 3, "beam_width": 3}
    res = gen.generate(prompt, stop_at_eos=False, **kw)
    assert res.stop_reason == "length" and res.n_prompt_notes == 5
    prompt_rows = {tuple(r) for r in gen.encode_prompt(prompt)[2].tolist()}
    assert prompt_rows <= {tuple(r) for r in res.grid.tolist()}
    kinds = tok.kinds[np.array(res.new_ids)]
    assert not (kinds == TokenKind.SPECIAL).any()  # no PAD/BOS/EOS mid-piece
    new = [r for r in res.grid.tolist() if tuple(r) not in prompt_rows]
    assert all(p % 12 in {0, 2, 4, 5, 7, 9, 11} and 21 <= p <= 108 for _, p, _ in new)
    if search in ("top_k", "top_p"):  # sampling reaches the target of 12 notes
        assert (kinds == TokenKind.PITCH).sum() == 12
    # miditok may write one pitch twice at one onset (as real files have it); the grid merges.
    assert len(grid_notes(load_midi(res.score.dumps_midi()))) == len(res.grid)
    again = gen.generate(prompt, stop_at_eos=False, **kw)
    assert again.ids == res.ids and again.score.dumps_midi() == res.score.dumps_midi()


# --- one Generator, two threads -----------------------------------------------------------


def test_two_threads_on_one_generator_get_the_sequential_results(prompt) -> None:
    gen = tiny_generator("tiny-original", 0)
    jobs = [
        {"search": "top_k", "notes": 60, "seed": 1, "stop_at_eos": False},
        {"search": "beam", "beam_width": 3, "notes": 40, "stop_at_eos": False},
    ]
    expected = [gen.generate(prompt, **job).ids for job in jobs]
    results: list[list[int] | None] = [None, None]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(2):
                ids = gen.generate(prompt, **jobs[i]).ids
                assert results[i] in (None, ids)
                results[i] = ids
        except BaseException as err:  # re-raised in the main thread below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results == expected


class NoC(StatelessRuleBase):
    """A rule that forbids every C: the smallest mask, to check the hook."""

    def restrict(self, grammar, mask):
        mask = mask.copy()
        mask[:, PITCH_OFFSET + np.arange(0, 128, 12)] = False
        return mask


@pytest.mark.parametrize("search", ["greedy", "top_p", "beam"])
def test_a_rule_narrows_every_search(search: str) -> None:
    gen = tiny_generator()
    cfg = GenerationConfig(search=search, notes=40, seed=3, beam_width=3, stop_at_eos=False)
    ids = gen.encode_prompt(None)[0]
    run = beam_search if search == "beam" else sample
    out = run(gen.model, gen.tokenizer, ids, cfg, None, rules=[NoC()])
    grid = gen.tokenizer.decode_grid(ids + out.ids)
    assert len(grid) == 40 and not (grid[:, 1] % 12 == 0).any()
