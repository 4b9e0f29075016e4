"""Shell completion for ``pipeline``: bash and zsh scripts that shtab writes from the argparse parser.

The parser itself says what each argument takes: its subcommands, options and ``choices``, and,
through shtab's ``.complete`` attribute, the kinds below (a file, a folder, a stage, a list of
stages, a sink target). The names of stages and sink kinds are written into the script when it is
made, from the configuration then in force (built-in ones and configured plugins): a script made
before a plugin was added does not offer it until it is made again.

Nothing here is imported by shtab until a script is made, so ``pipeline --help`` pays nothing for it.
"""

from __future__ import annotations

from argparse import ArgumentParser, _SubParsersAction
from collections.abc import Iterable

SHELLS = ("bash", "zsh")

# What an argument takes, for ``action.complete``: shtab's own names for files and folders, and
# shell functions of the preamble below for the rest (each shell calls its own function)
FILE = "file"
FOLDER = "directory"
STAGE = {"bash": "_pipeline_stage", "zsh": "_pipeline_stage"}  # a worker kind: a stage of the chain, or sink
STAGE_LIST = {"bash": "_pipeline_stage_list", "zsh": "_pipeline_stage_list"}  # "clean,language" (the chain)
SINK_TARGET = {"bash": "_pipeline_sink_target", "zsh": "_pipeline_sink_target"}  # "jsonl:out/enriched"


def _words(names: Iterable[str]) -> str:
    for name in names:
        if not name.replace("_", "").replace("-", "").isalnum():  # never shell syntax in the script
            raise ValueError(f"cannot complete the name {name!r}: letters, digits, - and _ only")
    return " ".join(names)


def _bash_preamble(roles: list[str], chain: list[str], sink_kinds: list[str]) -> str:
    # each function gets the word being completed as $1 and prints the candidates, one a line
    return f"""\
_pipeline_stage() {{
  compgen -W "{_words(roles)}" -- "$1"
}}
_pipeline_stage_list() {{  # the stages after the last comma; those before it stay as typed
  local before="" last="$1"
  if [[ $1 == *,* ]]; then before="${{1%,*}},"; last="${{1##*,}}"; fi
  compgen -P "$before" -W "{_words(chain)}" -- "$last"
}}
_pipeline_sink_target() {{
  compgen -W "{' '.join(f'{kind}:' for kind in _words(sink_kinds).split())}" -- "$1"
}}"""


def _zsh_preamble(roles: list[str], chain: list[str], sink_kinds: list[str]) -> str:
    return f"""\
_pipeline_stage() {{
  _describe -t stages 'stage' '({_words(roles)})'
}}
_pipeline_stage_list() {{
  _sequence compadd - {_words(chain)}
}}
_pipeline_sink_target() {{  # the kind, then (after its colon) a file or folder
  if compset -P '*:'; then
    _files
  else
    compadd -S ':' -- {_words(sink_kinds)}
  fi
}}"""


# bash: after a sink kind ("jsonl:") its location follows at once, so no space is added after it
_BASH_AFTER = """
_pipeline() {
  _shtab_pipeline "$@"
  local reply
  for reply in "${COMPREPLY[@]}"; do
    [[ $reply == *: ]] || return 0
  done
  [[ ${#COMPREPLY[@]} -gt 0 ]] && compopt -o nospace 2>/dev/null
  return 0
}
complete -o bashdefault -F _pipeline pipeline
"""


def _zsh_safe_metavars(parser: ArgumentParser) -> None:
    """shtab writes an option's metavar into zsh's ``_arguments`` spec as it is, where a colon
    ends the field ("KIND:LOCATION" would make "LOCATION" the completion action): escape it."""
    for action in parser._actions:
        if isinstance(action.metavar, str):
            action.metavar = action.metavar.replace(":", "\\:")
        if isinstance(action, _SubParsersAction):
            for subparser in set(action.choices.values()):
                _zsh_safe_metavars(subparser)


def script(parser: ArgumentParser, shell: str, roles: list[str], chain: list[str], sink_kinds: list[str]) -> str:
    """The completion script of ``parser`` for ``shell`` (bash or zsh). ``roles``: the worker kinds
    (stages of the chain, then ``sink``); ``chain``: the stages ``enrich --stages`` takes;
    ``sink_kinds``: ``jsonl``, ``parquet``, ... (plugins too)."""
    import shtab

    if shell == "bash":
        preamble = _bash_preamble(roles, chain, sink_kinds)
        return shtab.complete(parser, "bash", preamble=preamble) + _BASH_AFTER
    if shell == "zsh":
        _zsh_safe_metavars(parser)  # the parser is changed: build one for the script only
        return shtab.complete(parser, "zsh", preamble=_zsh_preamble(roles, chain, sink_kinds))
    raise ValueError(f"no completion for the shell {shell!r}; shells: {', '.join(SHELLS)}")
