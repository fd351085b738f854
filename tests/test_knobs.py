"""Each generation knob is written once: the CLI, the UI and the API agree by construction."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch

from tunesmith.cli.generate import add_parser
from tunesmith.cli.main import main
from tunesmith.errors import BadParameterError
from tunesmith.generation import GenerationConfig, Generator
from tunesmith.generation.config import knobs
from tunesmith.model import Transformer, preset
from tunesmith.tokenization import PairTokenizer
from tunesmith.tokenization.midi_io import score_from_grid
from tunesmith.ui.params import config_from_controls, control_specs

KNOBS = knobs()


def generate_options() -> dict[str, argparse.Action]:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    sub = parser._subparsers._group_actions[0].choices["generate"]  # noqa: SLF001
    return {a.dest: a for a in sub._actions}  # noqa: SLF001


def test_every_field_is_a_knob_and_a_cli_option():
    options = generate_options()
    assert list(KNOBS) == [f.name for f in fields(GenerationConfig)]
    for name, knob in KNOBS.items():
        action = options[name]
        assert knob.flag in action.option_strings and knob.help in action.help
        assert action.default is None  # a replayed record's value wins unless given
        if knob.kind is not bool:
            assert action.type is knob.kind and action.choices == knob.choices
        if knob.kind in (int, float):
            assert knob.bounds_text() in action.help


def test_ui_controls_are_knobs_within_their_bounds():
    for spec in control_specs():
        knob = KNOBS[spec.name]
        assert spec.searches == knob.searches and knob.ui == spec.kind
        if spec.kind == "slider":  # both ends of every slider are valid values
            for end in (spec.low, spec.high):
                GenerationConfig(**{spec.name: knob.kind(end)})


@pytest.mark.parametrize("name", [n for n, k in KNOBS.items() if k.kind in (int, float)])
def test_one_bound_refused_alike_by_api_cli_and_ui(name, tmp_path, capsys):
    knob = KNOBS[name]
    bad = knob.high + 1 if knob.high is not None else knob.low - 1
    bad = knob.kind(bad - 1 if bad == knob.ui_off else bad)  # the UI reads 0 as "no limit"
    with pytest.raises(BadParameterError, match=f"^{name}: must be ") as api:
        GenerationConfig(**{name: bad})
    argv = ["generate", knob.flag, str(bad), "--out", str(tmp_path / "x.mid")]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().endswith(f"{knob.flag}: {api.value.reason}")
    if knob.ui is not None and knob.ui != "slider":
        with pytest.raises(BadParameterError, match=f"^{name}: must be "):
            config_from_controls({"search": "top_k", name: bad})


@pytest.fixture(scope="module")
def gen() -> Generator:
    torch.manual_seed(0)
    tok = PairTokenizer()
    return Generator(Transformer(preset("tiny-original", tok.vocab_size), pad_id=tok.pad_id), tok)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"notes": "10"}, "notes"),
        ({"notes": 10.5}, "notes"),
        ({"notes": True}, "notes"),
        ({"top_k_notes": 2.7}, "top_k_notes"),
        ({"seed": "abc"}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"scale": 5}, "scale"),
        ({"stop_at_eos": 1}, "stop_at_eos"),
        ({"search": None}, "search"),
    ],
)
def test_wrong_types_are_refused_naming_the_field(gen, params, field):
    with pytest.raises(BadParameterError) as err:
        gen.generate(None, **params)
    assert err.value.field == field and str(err.value).startswith(f"{field}: ")
    with pytest.raises(BadParameterError):
        GenerationConfig(**params)


def test_generate_checks_its_own_arguments(gen):
    with pytest.raises(BadParameterError, match="^prompt_notes: "):
        gen.generate(None, prompt_notes=2.5)
    with pytest.raises(BadParameterError, match="^prompt: "):
        gen.generate(12)
    with pytest.raises(BadParameterError, match="^config: "):
        gen.generate(None, config={"notes": 3})


def test_a_path_is_a_prompt(gen, tmp_path: Path):
    path = tmp_path / "song.mid"
    score_from_grid(np.array([[0, 60, 4], [4, 62, 4], [8, 64, 4]])).dump_midi(str(path))
    by_path = gen.generate(path, notes=4, seed=1)
    by_str = gen.generate(str(path), notes=4, seed=1)
    assert by_path.n_prompt_notes == by_str.n_prompt_notes == 3
    assert by_path.score.dumps_midi() == by_str.score.dumps_midi()


def test_a_tiny_temperature_is_greedy(gen):
    greedy = gen.generate(None, search="greedy", notes=12, seed=3, stop_at_eos=False)
    tiny = gen.generate(None, search="top_p", temperature=1e-300, notes=12, seed=3,
                        stop_at_eos=False)  # fmt: skip
    assert tiny.new_ids == greedy.new_ids


def test_no_legal_note_is_the_stop_reason(gen):
    res = gen.generate(None, notes=16, pitch_range="60-60", max_repeat=1, stop_at_eos=False)
    assert res.stop_reason == "no legal note" and res.n_new_notes < 16
    assert any("no legal note" in w for w in res.warnings)


def test_non_finite_weights_are_refused():
    from tunesmith.errors import BadCheckpointError

    tok = PairTokenizer()
    model = Transformer(preset("tiny", tok.vocab_size))
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("nan")
    with pytest.raises(BadCheckpointError, match="not finite"):
        Generator(model, tok)


def test_the_docs_table_is_the_knobs():
    from tunesmith.generation.config import knob_table

    docs = Path(__file__).resolve().parents[1] / "docs" / "KNOBS.md"
    assert docs.read_text().endswith(knob_table()), "regenerate docs/KNOBS.md (see its header)"


def test_the_repetition_remedies_default_by_search_and_the_record_holds_values() -> None:
    from tunesmith.ui.params import config_from_controls, control_specs

    cfg = GenerationConfig()
    assert cfg.no_repeat_ngram_size is None and cfg.repetition_penalty is None
    for search, expected in (("greedy", (4, 1.3)), ("beam", (4, 1.3)), ("top_k", (0, 1.0))):
        got = GenerationConfig(search=search).resolved()
        assert (got.no_repeat_ngram_size, got.repetition_penalty) == expected
    assert GenerationConfig(search="greedy").resolved(by_search=False).no_repeat_ngram_size == 0
    explicit = GenerationConfig(search="greedy", no_repeat_ngram_size=0).resolved()
    assert explicit.no_repeat_ngram_size == 0 and explicit.repetition_penalty == 1.3
    # The web UI's untouched controls mean "the search's default" too.
    values = {s.name: s.value for s in control_specs()}
    ui = config_from_controls({**values, "search": "beam"}).resolved()
    assert (ui.no_repeat_ngram_size, ui.repetition_penalty) == (4, 1.3)
