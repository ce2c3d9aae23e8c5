"""The offline CLI through its real entry point (a subprocess, as a user runs it)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LESSON = ["the cat sat on the mat", "the cat ran", "the dog sat", "a dog ran home"]
ADDRESS = "store-address"  # in tmp_path: where cli() points --db, if there


def cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``markov-bot --db DB ARGS``: DB is ``m.db`` in ``tmp_path``, or the store the
    ``lesson`` fixture chose (each backend in turn)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    environment.pop("DISCORD_TOKEN", None)
    chosen = tmp_path / ADDRESS
    db = chosen.read_text() if chosen.exists() else str(tmp_path / "m.db")
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "--db", db, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no stray .env is read
        env=environment,
        timeout=120,
    )


def cli_json(tmp_path: Path, *args: str) -> Any:
    done = cli(tmp_path, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def lesson(tmp_path: Path, store_address: str) -> Path:
    """The lesson learned into a store on each backend; the test's commands use that store."""
    (tmp_path / ADDRESS).write_text(store_address)
    path = tmp_path / "lesson.txt"
    path.write_text("\n".join(LESSON) + "\n\n", encoding="utf-8")
    learned = cli_json(tmp_path, "learn", str(path))
    assert learned[str(path)]["learned"] == len(LESSON)
    return path


def test_learn_is_idempotent(tmp_path: Path, lesson: Path) -> None:
    again = cli_json(tmp_path, "learn", str(lesson))[str(lesson)]
    assert again["learned"] == 0 and again["already_known"] == len(LESSON)
    stats = cli_json(tmp_path, "stats")
    assert stats["messages"] == len(LESSON)
    assert stats["tokens"] == sum(len(line.split()) for line in LESSON)


def test_explain_json_lists_every_candidate_with_the_arithmetic(
    tmp_path: Path, lesson: Path
) -> None:
    e = cli_json(tmp_path, "explain", "the", "--temp", "0.5")
    # After "the": cat ×2, mat ×1, dog ×1 (order 1: wherever "the" occurred).
    counts = {c["token"]: c["count"] for c in e["candidates"]}
    assert counts == {"cat": 2, "mat": 1, "dog": 1}
    assert e["total"] == 4 and e["candidate_count"] == 3 and e["others"]["count"] == 0
    z = sum((c / 4) ** 2 for c in counts.values())  # softmax of ln p / 0.5 is p² normalised
    for c in e["candidates"]:
        p = c["count"] / 4
        assert c["p"] == pytest.approx(p)
        assert c["logit"] == pytest.approx(math.log(p))
        assert c["scaled_logit"] == pytest.approx(math.log(p) / 0.5)
        assert c["probability"] == pytest.approx(p**2 / z)
    h1 = -sum(c / 4 * math.log2(c / 4) for c in counts.values())
    assert e["entropy_bits"]["t1"] == pytest.approx(h1)
    assert e["perplexity"]["t1"] == pytest.approx(2**h1)


def test_end_marker_is_a_candidate(tmp_path: Path, lesson: Path) -> None:
    e = cli_json(tmp_path, "explain", "ran")
    assert [(c["token"], c["is_end"]) for c in e["candidates"]] == [
        ("<end>", True),
        ("home", False),
    ]


def test_markov_is_reproducible_and_traced(tmp_path: Path, lesson: Path) -> None:
    first = cli_json(tmp_path, "markov", "the", "--temp", "1", "--seed", "42")
    second = cli_json(tmp_path, "markov", "the", "--temp", "1", "--seed", "42")
    assert first == second
    assert first["tokens"][0] == "the" and first["seed"] == 42
    assert all(0 < s["probability"] <= 1 for s in first["steps"])
    assert first["log_prob_sampled"] == pytest.approx(
        sum(math.log(s["probability"]) for s in first["steps"])
    )
    assert first["log_prob_learned"] == pytest.approx(
        sum(math.log(s["probability_learned"]) for s in first["steps"])
    )
    human = cli(tmp_path, "markov", "the", "--seed", "42", "--trace", "--temp", "0.5")
    assert human.returncode == 0 and "rank" in human.stdout
    lines = human.stdout.splitlines()
    # The phone-wide trace (the default): the sampling distribution on a line of its own.
    assert "  learned model, T = 1: perplexity" in lines[-3]
    assert "  as sampled: perplexity" in lines[-2]
    assert lines[-1] == "    (sampled at T = 0.5)"
    wide = cli(tmp_path, "markov", "the", "--seed", "42", "--trace", "--wide", "--temp", "0.5")
    assert "  as sampled, T = 0.5: perplexity" in wide.stdout.splitlines()[-1]
    assert "seed 42" in human.stdout and "context of 1 word" in human.stdout


def test_greedy_prints_no_seed(tmp_path: Path, lesson: Path) -> None:
    done = cli(tmp_path, "markov", "the", "--temp", "0", "--seed", "5")
    assert done.returncode == 0, done.stderr
    assert "T = 0 (greedy), context of 1 word" in done.stdout and "seed" not in done.stdout


def test_unknown_words_are_backed_off_over_and_named(tmp_path: Path, lesson: Path) -> None:
    done = cli(tmp_path, "markov", "banana", "cat", "--seed", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Never saw “banana”; using “cat”.\ncat ")
    g = cli_json(tmp_path, "markov", "banana", "cat", "--seed", "1")
    assert g["unknown"] == ["banana"] and g["tokens"][0] == "cat"
    e = cli(tmp_path, "explain", "banana", "sat")
    assert e.returncode == 0, e.stderr
    assert e.stdout.startswith("Never saw “banana”; using “sat”.\nContext “sat”")
    assert cli_json(tmp_path, "explain", "banana", "sat")["unknown"] == ["banana"]
    step = cli(tmp_path, "step", "zzz", "the", "--keys", "q")
    assert step.returncode == 0 and "Never saw “zzz”; using “the”." in step.stdout
    compared = cli(tmp_path, "compare", "qqq", "the", "--seed", "2")
    assert compared.returncode == 0 and "Never saw “qqq”; using “the”." in compared.stdout


def test_greedy_takes_the_most_frequent_word(tmp_path: Path, lesson: Path) -> None:
    g = cli_json(tmp_path, "markov", "the", "--temp", "0", "--length", "1")
    assert g["tokens"] == ["the", "cat"]


def test_compare_shares_one_seed(tmp_path: Path, lesson: Path) -> None:
    out = cli_json(tmp_path, "compare", "the", "--temps", "0,0.5,2", "--seed", "3")
    assert out["seed"] == 3
    assert [r["temperature"] for r in out["results"]] == [0.0, 0.5, 2.0]
    assert {r["seed"] for r in out["results"]} == {3}
    for r in out["results"]:
        assert r["perplexity_learned"] == pytest.approx(
            math.exp(-r["log_prob_learned"] / len(r["steps"]))
        )
        assert r["perplexity_sampled"] == pytest.approx(
            math.exp(-r["log_prob_sampled"] / len(r["steps"]))
        )


def test_forget_restores_the_model(tmp_path: Path, lesson: Path) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text("the zebra sat\n", encoding="utf-8")
    before = cli_json(tmp_path, "explain", "the")
    cli_json(tmp_path, "learn", str(extra))
    assert "zebra" in {c["token"] for c in cli_json(tmp_path, "explain", "the")["candidates"]}
    assert cli_json(tmp_path, "forget", str(extra)) == {"forgotten": 1}
    assert cli_json(tmp_path, "explain", "the") == before
    assert cli_json(tmp_path, "forget", "--all") == {"forgotten": len(LESSON)}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("markov", "--temp", "7"), "Temperature must be between 0 and 5"),
        (("markov", "--temp", "nan"), "finite"),
        (("markov", "--length", "100000"), "Length"),
        (("explain", "zebra"), "never learned"),
        (("explain", "the", "zebra"), "never learned “zebra”"),
        (("compare", "--temps", "0.1,abc"), "not a number"),
        (("markov", "--top-p", "1.5"), "top_p"),
    ],
)
def test_bad_input_is_one_clear_line(
    tmp_path: Path, lesson: Path, args: tuple[str, ...], needle: str
) -> None:
    done = cli(tmp_path, *args)
    assert done.returncode == 2
    assert needle in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_unknown_word_suggests_close_ones(tmp_path: Path, lesson: Path) -> None:
    done = cli(tmp_path, "explain", "cta")
    assert done.returncode == 2 and "cat" in done.stderr


def test_bad_setting_stops_with_its_name(tmp_path: Path) -> None:
    done = cli(tmp_path, "stats", env={"LOG_LEVEL": "LOUD"})
    assert done.returncode == 2 and "LOG_LEVEL" in done.stderr and "Traceback" not in done.stderr


def test_run_without_token_says_so(tmp_path: Path) -> None:
    done = cli(tmp_path, "run")
    assert done.returncode == 1 and "DISCORD_TOKEN" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_empty_model_learns_the_default_corpus_first(tmp_path: Path) -> None:
    done = cli(tmp_path, "compare", "When", "--temps", "0.1,0.5,1.0", "--seed", "1")
    assert done.returncode == 0, done.stderr
    assert "learning the bundled corpus" in done.stdout
    texts = [line.strip() for line in done.stdout.splitlines() if line.startswith("  When")]
    assert len(texts) == 3
    # The classic demonstration: greedy-ish sampling at 0.1 loops on a phrase.
    words = texts[0].split()
    assert len(words) > len(set(words)) + 5
    # Perplexity is measured under the learned model, says so, and rises with T.
    assert "Perplexity under the learned model (T = 1)" in done.stdout
    shown = [
        float(line.rsplit("perplexity ", 1)[1].rstrip(")"))
        for line in done.stdout.splitlines()
        if line.startswith("T = ")
    ]
    assert len(shown) == 3 and shown[0] < shown[1] < shown[2], shown


def test_step_presses_keys_like_the_buttons(tmp_path: Path, lesson: Path) -> None:
    out = cli_json(tmp_path, "step", "the", "--keys", "ggbq")
    assert out["words"] == ["the", "cat"] and out["text"] == "the cat"
    assert out["steps"] == ["took the top word “cat” — probability 50.0%, rank 1 of 3"]
    # Seeded samples repeat; the terminal shows the candidates the buttons would.
    first = cli_json(tmp_path, "step", "--seed", "4", "--keys", "ssss")
    assert cli_json(tmp_path, "step", "--seed", "4", "--keys", "ssss") == first
    shown = cli(tmp_path, "step", "the", "--keys", "cq")
    assert shown.returncode == 0, shown.stderr
    assert "50.0%  cat" in shown.stdout and "T = 0.5 · the" in shown.stdout


def test_step_takes_the_knobs_of_markov(tmp_path: Path, lesson: Path) -> None:
    """After "the": cat 2, mat 1, dog 1. Banning cat leaves mat and dog at 1/2 each; the
    tie goes to mat, learned first, where cat would have been the top word."""
    out = cli_json(
        tmp_path, "step", "the", "--ban", "cat", "--repetition-penalty", "2", "--keys", "g"
    )
    assert out["words"] == ["the", "mat"]
    assert out["steps"] == [
        "took the top word “mat” — probability 50.0%, rank 1 of 3; "
        "a penalty/bias/ban changed the word"
    ]
    assert out["knobs"] == {
        "min_p": None,
        "repetition_penalty": 2.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "ban": ["cat"],
        "bias": {},
    }
    # Sample pressed six times draws what markov draws with the same seed and knobs.
    knobs = ["--ban", "the", "--bias", "dog=+1", "--presence-penalty", "0.5", "--seed", "3"]
    stepped = cli_json(tmp_path, "step", *knobs, "--keys", "ssssss")
    made = cli_json(tmp_path, "markov", *knobs, "--length", "6", "--no-originality")
    assert stepped["words"] == made["tokens"] and stepped["knobs"] == made["knobs"]
    shown = cli(tmp_path, "step", "the", "--ban", "cat", "--keys", "q")
    assert shown.returncode == 0, shown.stderr
    assert "T = 1, ban cat · the" in shown.stdout and "0.0%  cat (ban)" in shown.stdout
    for flags, message in [
        (["--ban", "zebra"], "I never learned “zebra”, so I cannot ban or bias it."),
        (["--presence-penalty", "-1"], "presence_penalty must be from 0 (off) to 10; got -1."),
        (["--bias", "cat"], "Write a bias as WORD=NUMBER, for example cat=+2; got “cat”."),
    ]:
        bad = cli(tmp_path, "step", "the", *flags, "--keys", "q")
        assert bad.returncode == 2, bad.stderr
        assert bad.stderr.splitlines()[-1] == f"markov-bot: {message}"


def test_step_refuses_to_go_past_the_end(tmp_path: Path, lesson: Path) -> None:
    out = cli(tmp_path, "step", "home", "--keys", "gsq")
    assert out.returncode == 0, out.stderr
    assert "the sentence has ended" in out.stdout


def test_corpus_option_reads_a_bundled_corpus(tmp_path: Path) -> None:
    g = cli_json(tmp_path, "markov", "the", "--corpus", "tiny-lesson", "--seed", "1")
    assert g["text"].startswith("the ")
    e = cli_json(tmp_path, "explain", "the", "--corpus", "tiny-lesson")
    assert sum(c["count"] for c in e["candidates"]) > 0
    # The CLI's own namespace was not filled with the default corpus.
    assert cli_json(tmp_path, "stats")["messages"] == 0
    bad = cli(tmp_path, "markov", "--corpus", "nope")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_forget_author_and_retention_act_on_a_servers_model_as_the_bot_does(
    tmp_path: Path,
) -> None:
    import asyncio
    import time

    from bot.core.tokenize import tokenize
    from bot.store import Incoming, Store

    now = time.time()

    async def seed() -> None:
        store = await Store.open(tmp_path / "m.db")
        try:
            ns = await store.namespace("guild:5", 2)
            await store.learn(
                ns,
                [
                    Incoming(1, tokenize("alice wrote this"), author=7, created=now),
                    Incoming(2, tokenize("bob wrote that"), author=8, created=now - 40 * 86400),
                    Incoming(3, tokenize("bob again today"), author=8, created=now),
                ],
            )
        finally:
            await store.close()

    async def left() -> set[int]:
        store = await Store.open(tmp_path / "m.db")
        try:
            return await store.known_messages(await store.namespace("guild:5", 2), [1, 2, 3])
        finally:
            await store.close()

    asyncio.run(seed())
    assert cli_json(tmp_path, "forget", "--author", "7", "--guild", "5") == {"forgotten": 1}
    assert asyncio.run(left()) == {2, 3}
    out = cli_json(tmp_path, "retention", "30", "--guild", "5")
    assert out == {"forgotten": 1, "days": 30}
    assert asyncio.run(left()) == {3}
    bad = cli(tmp_path, "forget", "--author", "7", "--all")
    assert bad.returncode == 2 and "--author ID, or --all" in bad.stderr


def test_the_sampling_lab_knobs_by_hand(tmp_path: Path, lesson: Path) -> None:
    """After "the" in LESSON: cat 2, mat 1, dog 1 (4 in all). The output so far "the cat
    sat on the" has cat once: R = 2 makes its logit 2 ln 1/2 = ln 1/4; mat is banned; so
    cat and dog share the distribution: 1/2 each."""
    e = cli_json(
        tmp_path,
        "explain",
        "the",
        "cat",
        "sat",
        "on",
        "the",
        "--repetition-penalty",
        "2",
        "--ban",
        "mat",
        "--min-p",
        "0.5",
    )
    rows = {c["token"]: c for c in e["candidates"]}
    assert rows["cat"]["adjusted_logit"] == pytest.approx(2 * math.log(1 / 2))
    assert rows["cat"]["probability"] == pytest.approx(1 / 2)
    assert rows["dog"]["probability"] == pytest.approx(1 / 2)
    assert rows["mat"]["adjusted_logit"] is None and rows["mat"]["removed_by"] == "ban"
    assert rows["dog"]["removed_by"] is None
    assert e["stages"] == [
        {"stage": "adjust", "kept": 2, "mass": 1.0},
        {"stage": "min_p", "kept": 2, "mass": pytest.approx(1.0)},
    ]
    human = cli(tmp_path, "explain", "the", "--bias", "dog=+1", "--ban", "mat")
    assert human.returncode == 0, human.stderr
    assert max(len(line) for line in human.stdout.splitlines()[3:]) <= 40, human.stdout
    assert "ban" in human.stdout and "bias dog +1" in human.stdout
    wide = cli(tmp_path, "explain", "the", "--ban", "mat", "--wide")
    assert any(len(line) > 40 for line in wide.stdout.splitlines())
    bad = cli(tmp_path, "explain", "the", "--ban", "zebra")
    assert bad.returncode == 2 and "I never learned “zebra”" in bad.stderr


def test_compare_varies_one_knob(tmp_path: Path, lesson: Path) -> None:
    out = cli_json(
        tmp_path,
        "compare",
        "the",
        "--vary",
        "repetition_penalty",
        "--values",
        "1,1.3,2",
        "--temp",
        "0.1",
        "--seed",
        "1",
    )
    assert out["vary"] == "repetition_penalty"
    assert [g["knobs"]["repetition_penalty"] for g in out["results"]] == [1.0, 1.3, 2.0]
    assert {g["temperature"] for g in out["results"]} == {0.1}
    assert not any(s["changed_by_knobs"] for s in out["results"][0]["steps"])
    human = cli(
        tmp_path,
        "markov",
        "the",
        "--repetition-penalty",
        "3",
        "--temp",
        "0.1",
        "--min-words",
        "12",
        "--seed",
        "1",
        "--trace",
    )
    assert human.returncode == 0 and "repetition ×3" in human.stdout
    assert "! a penalty/bias/ban changed the word" in human.stdout
