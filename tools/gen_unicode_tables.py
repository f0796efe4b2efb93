#!/usr/bin/env python3
"""Generate engine/unicode_tables.c: the Unicode data the CLIP tokenizer needs.

The tokenizer reproduces transformers' CLIPTokenizer, whose text pipeline runs in HF tokenizers:
NFC (from an older Unicode: a Rust crate pinned years ago), a \\s+ -> " " replace, per-character
Rust lower-casing, and a regex split on \\p{L} / \\p{N} / \\s (Oniguruma). Those pieces do not
share one Unicode version, and none is Python's. So the facts come from Python's unicodedata
(decompositions, combining classes, str.isspace) and are then checked against and restricted
or extended to what the reference library itself does, character by character:
  - class flags: \\p{L}, \\p{N}, \\s as the reference's regex engine matches them, and Python's
    str.isspace (transformers strips decoded text in Python)
  - lower-case: the reference Lowercase normalizer on each character
  - NFC: canonical decompositions, combining classes and primary composites, kept only where
    the reference's NFD / NFC acts on the character (Hangul is arithmetic in C).
Usage: python3 tools/gen_unicode_tables.py > engine/unicode_tables.c
Needs: pip install tokenizers  (the version is recorded in the output).
"""
import sys
import unicodedata as ud

import tokenizers
from tokenizers import Regex, normalizers

MAXCP = 0x110000
HANGUL = range(0xAC00, 0xAC00 + 11172)
CPS = [c for c in range(MAXCP) if not 0xD800 <= c < 0xE000]   # Rust strings hold no surrogates
SEP = "\n"                                                       # a starter nothing acts on
PROBE = [c for c in CPS if chr(c) != SEP]


def batched(normalizer, texts):
    """normalizer applied to each text; one call, texts joined by SEP (which none contains)."""
    out = normalizer.normalize_str(SEP.join(texts)).split(SEP)
    if len(out) != len(texts):
        sys.exit("batched probe lost alignment")
    return out


def regex_set(pattern):
    s = "".join(chr(c) for c in CPS)
    r = normalizers.Replace(Regex(pattern), "\x01").normalize_str(s)
    if len(r) != len(s):
        sys.exit("regex probe %s changed the length" % pattern)
    # U+0001 itself is none of the classes probed, so "unchanged" means "not matched"
    return {CPS[i] for i in range(len(s)) if r[i] != s[i]}


def ranges(fn, domain_max=MAXCP):
    out, start, cur = [], 0, fn(0)
    for c in range(1, domain_max + 1):
        v = fn(c) if c < domain_max else None
        if v != cur:
            if cur:
                out.append((start, c - 1, cur))
            start, cur = c, v
    return out


def full_decomp(c):
    d = ud.decomposition(chr(c))
    if not d or d.startswith("<"):
        return [c]
    res = []
    for p in d.split():
        res.extend(full_decomp(int(p, 16)))
    return res


def emit(name, rows, per_line, width):
    lines = ["const uint32_t %s[] = {" % name]
    flat = [x for r in rows for x in r]
    step = per_line * width
    for i in range(0, len(flat), step):
        lines.append("    " + ", ".join("0x%X" % x for x in flat[i:i + step]) + ",")
    lines.append("};")
    lines.append("const int %s_n = %d;" % (name, len(rows)))
    return "\n".join(lines)


def main():
    nfd, nfc = normalizers.NFD(), normalizers.NFC()
    # --- classes, as the reference's regex engine sees them
    L, N, WS = regex_set(r"\p{L}"), regex_set(r"\p{N}"), regex_set(r"\s")
    pyspace = {c for c in CPS if chr(c).isspace()}

    def flags(c):
        return (1 if c in L else 0) | (2 if c in N else 0) | (4 if c in WS else 0) | (8 if c in pyspace else 0)
    cls = ranges(flags)

    # --- lower-case, per character, as the reference does it
    lowered = batched(normalizers.Lowercase(), [chr(c) for c in PROBE])
    lower = []
    for c, lo in zip(PROBE, lowered):
        if lo != chr(c):
            if len(lo) > 2:
                sys.exit("lower-case of U+%04X longer than 2" % c)
            lower.append((c, ord(lo[0]), ord(lo[1]) if len(lo) > 1 else 0))

    # --- decompositions: Python's, where the reference decomposes the character the same way
    ref_nfd = batched(nfd, [chr(c) for c in PROBE])
    decomp, pool, decomposes = [], [], set()
    for c, d in zip(PROBE, ref_nfd):
        if d == chr(c) or c in HANGUL:
            continue
        mine = full_decomp(c)
        if [ord(x) for x in d] != mine:
            sys.exit("U+%04X: reference NFD %r, unicodedata %r" % (c, d, mine))
        decomposes.add(c)
        decomp.append((c, len(pool), len(mine)))
        pool.extend(mine)
    # (characters unicodedata decomposes and the older reference does not are left out)

    # --- combining classes: Python's (immutable once assigned), for the characters the
    # reference reorders; probed against a class-1 mark (U+0334) or, for class 1, class 240
    marks = [c for c in PROBE if ud.combining(chr(c)) and c not in decomposes]
    texts, expect = [], []
    for c in marks:
        k = ud.combining(chr(c))
        if k > 1:
            texts.append(chr(c) + "\u0334")
            expect.append("\u0334" + chr(c))
        else:
            texts.append("\u0345" + chr(c))
            expect.append(chr(c) + "\u0345")
    probed = batched(nfd, texts)
    known = {c for c, got, want in zip(marks, probed, expect) if got == want}
    ccc = ranges(lambda c: ud.combining(chr(c)) if c in known else 0)

    # --- compositions: Python's canonical pairs whose result the reference's NFC gives back
    cand = []
    for c in decomposes:
        parts = ud.decomposition(chr(c)).split()
        if len(parts) == 2:
            cand.append((int(parts[0], 16), int(parts[1], 16), c))
    back = batched(nfc, ["".join(map(chr, full_decomp(c))) for _, _, c in cand])
    compose = sorted((a, b, c) for (a, b, c), got in zip(cand, back) if got == chr(c))

    print("/* unicode_tables.c: GENERATED by tools/gen_unicode_tables.py; do not edit, rerun it.")
    print(" * Facts from Python's unicodedata (Unicode %s), matched character by character to what" % ud.unidata_version)
    print(" * the reference, HF tokenizers %s, does (its NFC, regex classes and lower-casing come" % tokenizers.__version__)
    print(" * from different Unicode versions). Tables, each sorted by its first column:")
    print(" * class ranges {first, last, flags} (1 \\p{L}, 2 \\p{N}, 4 \\s, 8 Python str.isspace),")
    print(" * lower-case {cp, lower, second char or 0}, combining class ranges {first, last, ccc},")
    print(" * canonical decompositions {cp, offset, length} into the pool, compositions {a, b, ab}. */")
    print("#include <stdint.h>")
    print('const char craft_uc_source[] = "unicodedata %s, tokenizers %s";' % (ud.unidata_version, tokenizers.__version__))
    print(emit("craft_uc_class", cls, 4, 3))
    print(emit("craft_uc_lower", lower, 4, 3))
    print(emit("craft_uc_ccc", ccc, 4, 3))
    print(emit("craft_uc_decomp", decomp, 4, 3))
    print(emit("craft_uc_decomp_pool", [(x,) for x in pool], 12, 1))
    print(emit("craft_uc_compose", compose, 4, 3))


if __name__ == "__main__":
    main()
