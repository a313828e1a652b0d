"""Collectives per step, read from a compiled program's HLO text (`compiled.as_text()`).

A scanned layer loop is one `while` in HLO whose body appears once; counting its text once would miss
(layers - 1) copies of every per-layer all-gather. So each computation is counted as often as it runs: a
`while` body times its trip count, read from the loop condition (`compare(counter, constant(N)),
direction=LT`, the form `lax.scan` / `fori_loop` lower to; a loop whose count cannot be read is counted
once and reported in `unknown_trip_counts`). Branches of a `conditional` are all counted (an upper bound).

Bytes are the sizes of each op's result on one chip: for an all-gather the gathered array, for a
reduce-scatter the scattered shard, for an all-reduce the reduced array.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

KINDS = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")
_DTYPE_BYTES = {"pred": 1, "s4": 1, "u4": 1, "s8": 1, "u8": 1, "bf16": 2, "f16": 2, "s16": 2, "u16": 2,
                "f32": 4, "s32": 4, "u32": 4, "f64": 8, "s64": 8, "u64": 8, "c64": 8, "c128": 16}
_HEADER = re.compile(r"^(ENTRY )?%?([\w.\-]+) \(.*\) -> .* \{$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?[\w.\-]+ = (.+?) ([a-z][\w\-]*)\(")
_ARRAY = re.compile(r"\b([a-z]+\d*)\[([\d,]*)\]")
_CALLED = re.compile(r"\b(?:calls|to_apply)=%?([\w.\-]+)")
_BODY = re.compile(r"\bbody=%?([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_CONDITION = re.compile(r"\bcondition=%?([\w.\-]+)")
_TRIP_COMPARE = re.compile(r"compare\([^)]*\), direction=LT")
_KNOWN_TRIP_COUNT = re.compile(r'"known_trip_count":\{"n":"(\d+)"')
_CONSTANT = re.compile(r"= [su]\d+\[\]\S* constant\((\d+)\)")


@dataclasses.dataclass
class Collectives:
    """Per-step counts and result bytes per collective kind."""

    counts: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    bytes: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    unknown_trip_counts: int = 0

    def add(self, other: Collectives, times: int = 1) -> None:
        for k in KINDS:
            self.counts[k] += other.counts[k] * times
            self.bytes[k] += other.bytes[k] * times
        self.unknown_trip_counts += other.unknown_trip_counts  # loops in the program, not executions


def array_sizes(shape_text: str) -> list[int]:
    """Bytes of each array named in an HLO shape (a tuple's elements in order; layouts ignored)."""
    sizes = []
    for dtype, dims in _ARRAY.findall(shape_text):
        n = 1
        for d in filter(None, dims.split(",")):
            n *= int(d)
        sizes.append(n * _DTYPE_BYTES.get(dtype, 4))
    return sizes


def result_bytes(op: str, shape_text: str) -> int:
    """Bytes an op produces. Async `all-gather-start` / `collective-permute-start` return (operand,
    result[, context]) tuples: their largest array is the result; other ops' arrays are all results."""
    sizes = array_sizes(shape_text) or [0]
    return max(sizes) if op in ("all-gather-start", "collective-permute-start") else sum(sizes)


def split_computations(hlo_text: str) -> tuple[dict[str, list[str]], str]:
    """{computation name: its instruction lines} and the ENTRY computation's name."""
    computations: dict[str, list[str]] = {}
    entry, current = "", None
    for line in hlo_text.splitlines():
        header = _HEADER.match(line)
        if header:
            current = header.group(2)
            computations[current] = []
            entry = current if header.group(1) else entry
        elif line.startswith("}"):
            current = None
        elif current is not None:
            computations[current].append(line)
    if not entry:
        raise ValueError("HLO text has no ENTRY computation (pass compiled.as_text())")
    return computations, entry


def trip_count(while_line: str, computations: dict[str, list[str]]) -> int | None:
    """Iterations of a `while` instruction, or None when neither XLA nor its condition says."""
    known = _KNOWN_TRIP_COUNT.search(while_line)
    if known:
        return int(known.group(1))
    cond = _CONDITION.search(while_line)
    lines = list(computations.get(cond.group(1), [])) if cond else []
    for name in _CALLED.findall("\n".join(lines)):  # the compare may sit in a fusion the condition calls
        lines += computations.get(name, [])
    if not any(_TRIP_COMPARE.search(line) for line in lines):
        return None
    constants = [int(m.group(1)) for line in lines for m in [_CONSTANT.search(line)] if m]
    return constants[0] if len(constants) == 1 else None


def _callees(line: str, computations: dict[str, list[str]]) -> Iterator[tuple[str, int | None]]:
    """(called computation, times per execution of `line`); None times = a loop of unknown count."""
    for name in _CALLED.findall(line):
        yield name, 1
    body = _BODY.search(line)
    if body:
        yield body.group(1), trip_count(line, computations)
    for group in _BRANCHES.findall(line):
        for name in group.split(","):
            yield name.strip().lstrip("%"), 1


def collectives(hlo_text: str) -> Collectives:
    """Collectives one execution of the program's ENTRY computation runs (see module docstring)."""
    computations, entry = split_computations(hlo_text)
    memo: dict[str, Collectives] = {}

    def visit(name: str) -> Collectives:
        if name in memo:
            return memo[name]
        memo[name] = out = Collectives()  # placeholder breaks (impossible) cycles
        for line in computations.get(name, []):
            m = _INSTRUCTION.match(line)
            if m:
                kind = m.group(2).removesuffix("-start")
                if kind in KINDS:
                    out.counts[kind] += 1
                    out.bytes[kind] += result_bytes(m.group(2), m.group(1))
            for callee, times in _callees(line, computations):
                if times is None:
                    out.unknown_trip_counts += 1
                out.add(visit(callee), 1 if times is None else times)
        return out

    return visit(entry)
