"""End to end in headless Chromium: upload, Generate, listen, Extend, Undo, Download, bad input.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright``
package; Playwright's own browser download is not used. Skipped, with the reason
printed, only when either is missing.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from tunesmith.tokenization.midi_io import grid_notes, load_midi, score_from_grid
from ui_fakes import FakeGenerator

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "final-fantasy-piano"
NEW_NOTES = 24  # small: the real model runs on the CPU the rest of the suite shares
TIMEOUT_MS = 60_000


def make_generator() -> tuple[object, str]:
    """What the app serves here: the bundled model when it exists, else a random tiny one.

    The random-weight model runs the real Generator code (tokenizer, search, decoding)
    without a trained checkpoint.
    """
    import torch

    from tunesmith.generation.generator import Generator
    from tunesmith.model.checkpoint import bundled_model_path
    from tunesmith.model.config import preset
    from tunesmith.model.transformer import Transformer
    from tunesmith.tokenization.pairs import PairTokenizer

    if bundled_model_path().exists():
        return Generator.from_pretrained(), "the bundled model"
    torch.manual_seed(0)
    tokenizer = PairTokenizer()
    model = Transformer(preset("tiny", tokenizer.vocab_size))
    return Generator(model, tokenizer), "a random-weight tiny model (no bundled model yet)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install playwright)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found (apt-get install chromium)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def serve(generator: object) -> tuple[str, object]:
    """Launch the app on a free loopback port in this process; returns (url, app)."""
    pytest.importorskip("gradio", reason="the web UI needs the app extra")
    from tunesmith.ui.app import MAX_UPLOAD, build_app

    demo = build_app(lambda: generator, examples_dir=CORPUS if CORPUS.is_dir() else None)
    port = free_port()
    demo.queue().launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        max_file_size=MAX_UPLOAD,
        quiet=True,
        share=False,
    )
    return f"http://127.0.0.1:{port}/", demo


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    generator, what = make_generator()
    print(f"serving {what}")
    url, demo = serve(generator)
    yield url
    demo.close()


@pytest.fixture
def slow_server() -> Iterator[str]:
    """A generator that takes 50 s for 1,000 notes unless stopped."""
    url, demo = serve(FakeGenerator(delay=0.05))
    yield url
    demo.close()


def open_page(chromium, url: str):
    """A page that may reach this server only; the list collects anything else it tried."""
    page = chromium.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page.set_default_timeout(TIMEOUT_MS)
    outside: list[str] = []

    def loopback_only(route):
        # The page must need nothing but this server (no fonts, scripts or telemetry).
        address = route.request.url
        host = urlsplit(address).hostname
        if address.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(address)
            route.abort()

    page.route("**/*", loopback_only)
    page.goto(url)
    return page, outside


@pytest.fixture
def prompt_path(tmp_path) -> Path:
    if CORPUS.is_dir():
        ff4 = CORPUS / "FF4.mid"
        return ff4 if ff4.exists() else sorted(CORPUS.glob("*.mid"))[0]
    path = tmp_path / "opening.mid"
    score_from_grid(np.array([[i * 2, 60 + (i * 7) % 12, 2] for i in range(48)])).dump_midi(path)
    return path


def summary_notes(text: str) -> int:
    match = re.match(r"(\d+) notes \(", text)
    assert match, f"unexpected summary {text!r}"
    return int(match.group(1))


def test_compose_in_a_real_browser(chromium, server, prompt_path, tmp_path):
    page, outside = open_page(chromium, server)
    summary = page.locator("#summary textarea")
    message = page.locator("#message textarea")

    def wait_summary(predicate: str) -> str:
        page.wait_for_function(
            f"() => {{ const v = document.querySelector('#summary textarea').value; return {predicate}; }}"
        )
        return summary.input_value()

    def download(to: Path) -> int:
        with page.expect_download() as info:
            page.locator("#midi a[download]").click()
        info.value.save_as(to)
        return len(grid_notes(load_midi(to)))

    page.locator("#stop").click()  # nothing runs: a message, no harm done
    page.wait_for_function(
        "() => document.querySelector('#message textarea').value.includes('Nothing')"
    )

    # Only the chosen search's knobs are on screen.
    page.locator("#search").get_by_text("beam", exact=True).click()
    page.get_by_text("beam_width").wait_for(state="visible")
    page.get_by_text("top_k_notes").wait_for(state="hidden")
    page.locator("#search").get_by_text("top_k", exact=True).click()
    page.get_by_text("top_k_notes").wait_for(state="visible")
    page.get_by_text("beam_width").wait_for(state="hidden")

    page.set_input_files("#upload input[type=file]", str(prompt_path))
    page.locator("#upload").get_by_text(prompt_path.stem).wait_for()
    page.locator("#prompt-notes textarea, #prompt-notes input").fill("24")
    notes_box = page.locator("#notes input[type=number]")
    notes_box.fill(str(NEW_NOTES))
    notes_box.press("Enter")

    page.locator("#generate").click()
    first = wait_summary("/^\\d+ notes \\(/.test(v)")
    page.locator("#roll img[src]").wait_for()
    page.locator("#audio .play-pause-button").wait_for()  # the player has a rendered WAV
    assert "24 prompt" in first
    first_count = download(tmp_path / "first.mid")
    assert first_count == summary_notes(first)
    page.screenshot(path=str(tmp_path / "after-generate.png"), full_page=True)

    page.locator("#extend").click()
    second = wait_summary(f"v !== {first!r} && /^\\d+ notes \\(/.test(v)")
    second_count = download(tmp_path / "second.mid")
    assert second_count > first_count and second_count == summary_notes(second)
    assert '"extensions"' in page.locator("#params").inner_text()

    page.locator("#undo").click()
    assert wait_summary(f"v === {first!r}") == first

    # Bad input: a visible message, and the piece on screen stays as it was.
    junk = tmp_path / "junk.mid"
    junk.write_text("this is not a MIDI file")
    page.locator("#upload button[aria-label=Clear]").click()  # back to the drop zone
    page.set_input_files("#upload input[type=file]", str(junk))
    page.locator("#upload").get_by_text("junk").wait_for()
    page.locator("#generate").click()
    page.wait_for_function(
        "() => document.querySelector('#message textarea').value.includes('not a MIDI file')"
    )
    assert summary.input_value() == first and "junk.mid" in message.input_value()

    # Over 10 MB: the server refuses the upload itself and says so.
    big = tmp_path / "big.mid"
    big.write_bytes(b"MThd" + bytes(10 * 1024 * 1024))
    page.locator("#upload button[aria-label=Clear]").click()
    page.set_input_files("#upload input[type=file]", str(big))
    page.get_by_text(re.compile("exceed the maximum allowed size")).first.wait_for()
    assert summary.input_value() == first

    shot = tmp_path / "tunesmith-ui.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshots: {shot} and {tmp_path / 'after-generate.png'}")
    assert outside == [], f"the page tried to reach other hosts: {outside}"
    page.close()


def test_stop_and_two_users_at_once(chromium, slow_server):
    """Alice's long generation holds the queue; Bob waits; Alice's Stop stops hers only."""
    alice, alice_outside = open_page(chromium, slow_server)
    bob, bob_outside = open_page(chromium, slow_server)
    for page, notes in ((alice, "1000"), (bob, "20")):
        box = page.locator("#notes input[type=number]")
        box.fill(notes)
        box.press("Enter")
    alice.locator("#generate").click()
    alice.get_by_text(re.compile(r"Generating")).first.wait_for()  # her progress bar is up
    bob.locator("#generate").click()
    alice.locator("#stop").click()
    for page, expected in ((alice, "stopped early"), (bob, "(0 prompt + 20 new)")):
        page.wait_for_function(
            "(want) => document.querySelector('#summary textarea').value.includes(want)",
            arg=expected,
        )
    text = alice.locator("#summary textarea").input_value()
    assert 0 < int(re.search(r"\+ (\d+) new", text)[1]) < 1000
    assert "stopped early" not in bob.locator("#summary textarea").input_value()
    assert alice_outside == [] and bob_outside == []
    alice.close()
    bob.close()


@pytest.fixture
def filling_server() -> Iterator[str]:
    """A quick generator whose ``infill`` regenerates bars (a stand-in for a FIM-trained model)."""
    url, demo = serve(FakeGenerator())
    yield url
    demo.close()


def roll_source(page) -> str:
    return page.locator("#roll img").get_attribute("src")


def wait_roll_change(page, before: str) -> str:
    page.wait_for_function(
        "(old) => { const i = document.querySelector('#roll img');"
        " return i && i.getAttribute('src') && i.getAttribute('src') !== old; }",
        arg=before,
    )
    return roll_source(page)


def choose_bars(page, first: str, last: str) -> None:
    for box, value in (("#first-bar", first), ("#last-bar", last)):
        field = page.locator(f"{box} input[type=number]")
        field.fill(value)
        field.press("Enter")


def test_regenerate_bars_and_undo_in_a_real_browser(chromium, filling_server, tmp_path):
    page, outside = open_page(chromium, filling_server)
    summary = page.locator("#summary textarea")

    def wait_summary(predicate: str) -> str:
        page.wait_for_function(
            "() => { const v = document.querySelector('#summary textarea').value;"
            f" return {predicate}; }}"
        )
        return summary.input_value()

    notes_box = page.locator("#notes input[type=number]")
    notes_box.fill("120")  # some 240 steps: fifteen bars
    notes_box.press("Enter")
    page.locator("#generate").click()
    first = wait_summary("/^\\d+ notes \\(/.test(v)")
    page.locator("#roll img[src]").wait_for()
    plain = roll_source(page)

    choose_bars(page, "2", "3")
    highlighted = wait_roll_change(page, plain)  # the chosen bars are shaded at once
    page.locator("#regenerate").click()
    second = wait_summary("v.includes('new in bars 2-3')")
    assert summary_notes(second) > 0 and second != first
    assert '"action": "infill"' in page.locator("#params").inner_text()
    zoomed = wait_roll_change(page, highlighted)  # bars 1-5: the two and their context
    page.screenshot(path=str(tmp_path / "after-regenerate.png"), full_page=True)
    page.locator("#whole input[type=checkbox]").check()
    wait_roll_change(page, zoomed)

    page.locator("#undo").click()
    assert wait_summary(f"v === {first!r}") == first

    # A reversed span: one visible line, and the piece stays.
    choose_bars(page, "9", "3")
    page.locator("#regenerate").click()
    page.wait_for_function(
        "() => document.querySelector('#message textarea').value.includes('comes after')"
    )
    assert summary.input_value() == first
    print(f"screenshot: {tmp_path / 'after-regenerate.png'}")
    assert outside == [], f"the page tried to reach other hosts: {outside}"
    page.close()


def test_regenerate_with_the_served_model(chromium, server):
    """Today's bundled model is not trained to fill in: its refusal is a visible line."""
    page, outside = open_page(chromium, server)
    notes_box = page.locator("#notes input[type=number]")
    notes_box.fill(str(NEW_NOTES))
    notes_box.press("Enter")
    page.locator("#generate").click()
    page.wait_for_function(
        "() => /^\\d+ notes \\(/.test(document.querySelector('#summary textarea').value)"
    )
    first = page.locator("#summary textarea").input_value()
    said = page.locator("#message textarea").input_value()  # e.g. a missing SoundFont
    choose_bars(page, "1", "1")
    page.locator("#regenerate").click()
    page.wait_for_function(
        "(said) => document.querySelector('#message textarea').value !== said"
        " || document.querySelector('#summary textarea').value.includes('new in bars 1-1')",
        arg=said,
    )
    message = page.locator("#message textarea").input_value()
    summary = page.locator("#summary textarea").input_value()
    if "new in bars 1-1" not in summary:  # refused: said in one line, the piece unchanged
        assert summary == first and message and "\n" not in message and "Traceback" not in message
    assert outside == []
    page.close()
