"""`pipeline --help` and shell completion: every command's help ends with examples that parse as
the command they show, and the bash and zsh scripts of `pipeline completion` really complete
(driven in bash and in an interactive zsh, no broker)."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import completion, config, registry
from pipeline.cli import build_parser
from pipeline.sinks import kinds

ROOT = Path(__file__).resolve().parent.parent


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(path, parser) of the root parser and of every subcommand, sub-subcommands too."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def example_commands(help_text: str) -> list[str]:
    """The command lines under ``examples:`` (comment lines left out)."""
    _, found, examples = help_text.partition("\nexamples:\n")
    assert found, "no examples section"
    return [line.strip() for line in examples.splitlines() if line.strip() and not line.strip().startswith("#")]


def pipeline_argv(line: str) -> list[str] | None:
    """The arguments of the `pipeline` invocation in a shell command line (after environment
    assignments, before a pipe, a redirection or `&&`), or None when it has none."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    segment: list[str] = []
    for token in [*lexer, ";"]:
        if token and set(token) <= set("();<>|&"):
            words = [w for w in segment if not re.match(r"^[A-Z_][A-Z0-9_]*=", w)]
            if words and words[0] == "pipeline":
                return words[1:]
            segment = []
        else:
            segment.append(token)
    return None


def test_every_command_ends_with_examples_of_itself_that_parse(capsys):
    seen = []
    for path, parser in commands(build_parser()):
        help_text = parser.format_help()
        lines = example_commands(help_text)
        assert help_text.rstrip().endswith(lines[-1]), f"{path}: the examples are not the end of --help"
        argvs = [argv for argv in map(pipeline_argv, lines) if argv is not None]
        assert len(argvs) >= 1 + (len(path) > 0), f"`pipeline {' '.join(path)}`: too few examples"
        for argv in argvs:
            assert tuple(argv[:len(path)]) == path, f"an example of `pipeline {' '.join(path)}` runs {argv}"
            try:
                args = build_parser().parse_args(argv)
            except SystemExit as exc:  # only `--help` may leave the parser, and without an error
                assert "--help" in argv and exc.code == 0, f"`pipeline {shlex.join(argv)}` does not parse"
            else:
                assert callable(args.func)
        seen.append(path)
    capsys.readouterr()
    assert ("deadletter", "list") in seen and ("completion",) in seen and () in seen


def test_examples_keep_their_line_breaks():
    help_text = dict(commands(build_parser()))[("run",)].format_help()
    assert "\n  # the five seed pages through every stage" in help_text
    assert "\n  pipeline run --replay seeds/ --exit-when-done\n" in help_text


@pytest.fixture(scope="module")
def scripts():
    out = {}
    for shell in completion.SHELLS:
        proc = subprocess.run([sys.executable, "-m", "pipeline", "completion", shell], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        out[shell] = proc.stdout
    return out


@pytest.fixture(scope="module")
def expected():
    """What completion should offer, from the parser and the configuration (not written down here)."""
    settings = config.load(None)
    parser = build_parser()
    enrich_options = [o for a in dict(commands(parser))[("enrich",)]._actions for o in a.option_strings]
    return {
        "subcommands": [p[0] for p, _ in commands(parser) if len(p) == 1],
        "deadletter": [p[1] for p, _ in commands(parser) if len(p) == 2 and p[0] == "deadletter"],
        "--st": sorted(o for o in enrich_options if o.startswith("--st")),
        "roles": registry.roles(settings),
        "chain": registry.chain(settings),
        "sink kinds": sorted(kinds(settings.sink)),
    }


@pytest.fixture()
def folder(tmp_path):
    """A folder to complete paths in: a subfolder and a file that share a prefix."""
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages.jsonl").write_text("{}\n")
    return tmp_path


def cases(expected) -> dict[str, tuple[list[str], list[str]]]:
    """name: (the words typed, the last one being completed; the candidates expected)."""
    second = expected["chain"][1]
    return {
        "subcommand": (["pipeline", "dead"], ["deadletter"]),
        "every subcommand": (["pipeline", ""], expected["subcommands"]),
        "sub-subcommand": (["pipeline", "deadletter", ""], expected["deadletter"]),
        "options": (["pipeline", "enrich", "--st"], expected["--st"]),
        "stage of a worker": (["pipeline", "worker", ""], expected["roles"]),
        "stage of a dead letter": (["pipeline", "deadletter", "list", "--stage", "s"],
                                   [r for r in expected["roles"] if r.startswith("s")]),
        "a list of stages": (["pipeline", "enrich", "--stages", f"{expected['chain'][0]},{second[:2]}"],
                             [f"{expected['chain'][0]},{c}" for c in expected["chain"] if c.startswith(second[:2])]),
        "sink kinds": (["pipeline", "run", "--sink", "p"], [k for k in expected["sink kinds"] if k.startswith("p")]),
        "choices": (["pipeline", "completion", ""], list(completion.SHELLS)),
        "files and folders": (["pipeline", "enrich", "pa"], ["pages", "pages.jsonl"]),
        "folders only": (["pipeline", "watch", "pa"], ["pages"]),
    }


def test_bash_script_completes(scripts, expected, folder):
    script = folder / "pipeline.bash"
    script.write_text(scripts["bash"])
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert syntax.returncode == 0, syntax.stderr
    wanted = cases(expected)
    # bash's completion, as readline calls it: COMP_WORDS, COMP_CWORD, then the function that
    # `complete -p pipeline` names, with the command, the word and the word before it
    driver = [f"source {shlex.quote(str(script))}",
              "fn=$(complete -p pipeline | sed -E 's/.* -F ([^ ]+) .*/\\1/')"]
    for name, (words, _) in wanted.items():
        driver += [f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})",
                   "COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=()",
                   '"$fn" pipeline "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"',
                   f"printf '%s' {shlex.quote(name)}; printf '\\t%s' \"${{COMPREPLY[@]}}\"; echo"]
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", "\n".join(driver)], cwd=folder,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    got = {name: sorted(rest) for name, *rest in (line.split("\t") for line in proc.stdout.splitlines())}
    for name, (_, candidates) in wanted.items():
        want = sorted(f"{c}:" for c in candidates) if name == "sink kinds" else sorted(candidates)
        assert got[name] == want, f"bash, {name}: {wanted[name][0]}"


def test_zsh_script_names_every_subcommand(scripts, expected):
    script = scripts["zsh"]
    assert script.startswith("#compdef pipeline")
    for name in [*expected["subcommands"], *expected["deadletter"]]:
        assert re.search(rf"^\s+{name}:'", script, re.M), f"the zsh script does not offer {name}"
    assert "KIND\\:LOCATION" in script  # a colon in a metavar would end the field of _arguments


# An interactive zsh on a pseudo-terminal (zsh/zpty) with the script installed as zsh loads it
# (a function `_pipeline` in $fpath, then compinit). compadd is wrapped to write what completion
# offers to a file; after each line typed and a Tab, a key of ours writes a marker and clears the line.
ZSH_DRIVER = r"""
zmodload zsh/zpty
zpty z 'zsh -f -i'
zpty -w z 'PS1=""; fpath=($FUNCTIONS $fpath); autoload -U compinit; compinit -u -D'
zpty -w z 'compadd() { local -a found; builtin compadd -O found "$@"; print -rl -- $found >>$OFFERED; builtin compadd "$@" }'
zpty -w z '_mark() { print -r -- "-- end" >>$OFFERED; BUFFER="" }; zle -N _mark; bindkey "^X^T" _mark'
while IFS= read -r line; do
  zpty -w -n z "$line"$'\t\C-x\C-t'
done <$TYPED
zpty -w z 'print DONE'
zpty -r z out '*DONE*'
zpty -d z
"""


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (scripts/bootstrap installs it as root): "
                    "the zsh script is only checked for its subcommands")
def test_zsh_script_completes(scripts, expected, folder):
    functions = folder / "functions"
    functions.mkdir()
    (functions / "_pipeline").write_text(scripts["zsh"])
    syntax = subprocess.run(["zsh", "-n", str(functions / "_pipeline")], capture_output=True, text=True, timeout=30)
    assert syntax.returncode == 0, syntax.stderr
    wanted = cases(expected)
    (folder / "lines").write_text("".join(shlex.join(words[:-1]) + " " + words[-1] + "\n"
                                          for words, _ in wanted.values()))
    (folder / "driver.zsh").write_text(ZSH_DRIVER)
    env = {**os.environ, "FUNCTIONS": str(functions), "OFFERED": str(folder / "offered"),
           "TYPED": str(folder / "lines"), "HOME": str(folder)}
    proc = subprocess.run(["zsh", "-f", str(folder / "driver.zsh")], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    blocks = (folder / "offered").read_text().split("-- end\n")
    assert len(blocks) == len(wanted) + 1, blocks
    for (name, (words, candidates)), block in zip(wanted.items(), blocks, strict=False):
        offered = set(block.split())
        if name == "a list of stages":  # zsh completes the word after the comma
            candidates = [c.rpartition(",")[2] for c in candidates]
        assert offered == set(candidates), f"zsh, {name}: {words}"
