"""Writes assets/fonts/WenQuanYiMicroHei-subset.ttf: the CJK fallback face of the window.

Source: wqy-microhei.ttc (face 0) from Debian's `fonts-wqy-microhei` (0.2.0-beta-3.1; Apache-2.0,
or GPL-3+ with the font exception; built on Droid Sans Fallback, with Hangul), fetched with
`apt-get download fonts-wqy-microhei` and unpacked with `dpkg-deb -x`. Kept: CJK
punctuation, kana, full-width forms, every hanzi / kanji of GB2312 and JIS X 0208, Big5's level-1
characters and KS X 1001's Hangul syllables (the characters of everyday Chinese, Japanese and Korean
file names). Needs fontTools (`pip install fonttools` in any throwaway venv).

Usage: python make_cjk_subset.py wqy-microhei.ttc OUT.ttf
"""
import sys

from fontTools import subset
from fontTools.ttLib import TTFont


def two_byte(codec, first, second):
    chars = set()
    for a in first:
        for b in second:
            try:
                chars.update(bytes([a, b]).decode(codec))
            except UnicodeDecodeError:
                pass
    return chars


def wanted():
    chars = set()
    for lo, hi in [(0x3000, 0x303F), (0x3040, 0x309F), (0x30A0, 0x30FF), (0x31F0, 0x31FF), (0xFF00, 0xFFEF)]:
        chars.update(map(chr, range(lo, hi + 1)))
    euc = range(0xA1, 0xFF)
    chars |= two_byte("gb2312", euc, euc)
    chars |= two_byte("euc_jp", euc, euc)
    chars |= two_byte("euc_kr", range(0xB0, 0xC9), euc)  # Hangul syllables
    chars |= two_byte("big5", range(0xA4, 0xC7), list(range(0x40, 0x7F)) + list(range(0xA1, 0xFF)))
    return {c for c in chars if ord(c) > 0x2000}


def main(source, out):
    font = TTFont(source, fontNumber=0)
    cmap = font.getBestCmap()
    keep = sorted(ord(c) for c in wanted() if ord(c) in cmap)
    options = subset.Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=keep)
    subsetter.subset(font)
    font.save(out)
    print(f"{out}: {len(keep)} characters")


if __name__ == "__main__":
    main(*sys.argv[1:3])
