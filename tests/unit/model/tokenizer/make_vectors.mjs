// Generates encode_vectors.json: DeepSeek-V3 token ids for a few hundred varied
// strings, computed by an independent implementation (@lenml/tokenizers, a
// dependency-free fork of transformers.js's tokenizers) from the same
// tokenizer.json. Ids are WITHOUT BOS/EOS (encode(..., add_special_tokens:
// false)); tokenizer_test.cc compares them with Encode(text, false).
//
// To regenerate (needs node and network access to the npm registry):
//   mkdir -p /tmp/tokvec && cd /tmp/tokvec && npm init -y && npm install @lenml/tokenizers@3.7.2
//   cp <repo>/tests/unit/model/tokenizer/make_vectors.mjs . && \
//     node make_vectors.mjs <repo>/data/tokenizers/deepseek-v3 > \
//       <repo>/tests/unit/model/tokenizer/encode_vectors.json
//
// Cases listed in KNOWN_DIVERGENT are where transformers.js's JavaScript
// regexes differ from HF's Oniguruma ones; their ids here are corrected by hand
// per HF semantics (see the comment on each), and the file records both.
import { TokenizerLoader } from "@lenml/tokenizers";
import fs from "fs";

const dir = process.argv[2] ?? "../../../../data/tokenizers/deepseek-v3";
const tokenizer = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(`${dir}/tokenizer.json`, "utf8")),
  tokenizerConfig: JSON.parse(fs.readFileSync(`${dir}/tokenizer_config.json`, "utf8")),
});

const texts = [];
const add = (...xs) => texts.push(...xs);

// ASCII prose.
add(
  "Hello world",
  "Hello, world!",
  "The quick brown fox jumps over the lazy dog.",
  "It's a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
  "I'm sure you'll agree: we've done what we'd planned, haven't we?",
  "DON'T SHOUT! don't whisper... Don't mumble.",
  "e.g. i.e. etc. Mr. Smith vs. Dr. Jones",
  "A", "a", " ", "  ", "", "x y z", "CamelCaseIdentifierName",
  "snake_case_identifier_name", "kebab-case-name", "UPPER_CASE_CONSTANT",
  "The year 2024 was followed by 2025.",
  "Email me at someone@example.com or visit https://example.org/path?q=1&r=2#frag",
  "Price: $1,234.56 (approx. €1.100,00) — a 12.5% discount!",
  "First line\nSecond line\nThird line",
  "Windows\r\nline\r\nendings\r\n",
  "Old Mac\rline endings\r",
  "Trailing spaces   ",
  "   Leading spaces",
  "Tabs\tbetween\twords\t\t\tand more",
  "Mixed \t \n \r\n whitespace \u000b\u000c end",
  "Multiple\n\n\nblank\n\n\n\nlines",
  "  \n  indented\n    more indented\n\tTabbed",
  "word.\nword,\nword!\n",
  "what?!?! really??? no!!!",
  "quotes \"double\" and 'single' and `back`",
  "(parentheses) [brackets] {braces} <angles>",
  "ellipsis… em—dash en–dash",
  "“curly quotes” and ‘single curly’",
  "a+b=c; x*y/z; p%q; ~tilde ^caret |pipe \\backslash",
  "#hashtag @mention $dollar &amp;",
  "....----____****====",
  "!!!???...,,,;;;:::",
  " .hidden .dotfile ./path ../parent",
);

// Digit runs of many lengths, alone and in context.
for (let n = 1; n <= 25; ++n) add("1234567890".repeat(3).slice(0, n));
for (const n of [30, 33, 40, 64, 100]) add("9".repeat(n));
add(
  "0", "00", "007", "3.14159265358979", "1e10", "-42", "+7", "1,000,000", "1_000_000",
  "0x1F3A", "0b101010", "v1.2.3", "2024-01-15T12:34:56Z", "12:30pm", "555-123-4567",
  "abc123def456", "123abc", "a1b2c3d4e5", "١٢٣٤٥ Arabic-Indic digits", "०१२३ Devanagari digits",
  "１２３４ fullwidth digits", "Ⅻ roman numeral ½ ¾ ² ³", "①②③ circled",
);

// CJK, kana, Korean.
add(
  "你好，世界！", "我爱北京天安门。", "今天天气很好，我们去公园散步吧。",
  "中文English混合text测试", "這是繁體中文的句子。", "汉字123数字456",
  "こんにちは世界", "カタカナとひらがな", "東京は日本の首都です。", "ｶﾀｶﾅ halfwidth katakana",
  "ラーメンを食べたい！", "ゝゞヽヾ iteration marks", "「かぎ括弧」『二重かぎ括弧』",
  "안녕하세요 세계", "한국어 문장입니다.", "대한민국 서울특별시",
  "日本語と한국어と中文", "𠀀𠀁 CJK extension B", "龘龘 rare hanzi", "〇一二三",
  "中文 空格 分隔", "中文\n换行", "中文。English. 日本語、",
);

// Other scripts, accents and combining marks.
add(
  "Привет, мир!", "Съешь же ещё этих мягких французских булок.", "Γειά σου Κόσμε",
  "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Xin chào thế giới",
  "Tiếng Việt có dấu", "ქართული ენა", "Բարեւ աշխարհ", "ሰላም ዓለም", "ᚠᚢᚦᚨᚱᚲ runes",
  "café naïve résumé coöperate", "Ångström Øresund Æsir", "straße STRASSE ß ẞ",
  "e\u0301 (e + combining acute)", "n\u0303 a\u0308 o\u0302\u0323", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇ zalgo",
  "\u0915\u094D\u0937 conjunct", "ÅÅ precomposed vs decomposed A\u030A", "ﬁ ligature ﬂ",
  "İstanbul ıi", "ǅ titlecase", "µ micro vs μ mu", "Ωmega Ω ohm",
);

// Emoji, including ZWJ sequences, flags, skin tones, keycaps.
add(
  "😀", "😀😃😄", "I ❤️ NY", "👍🏽 thumbs", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "🇺🇸🇯🇵🇩🇪 flags",
  "1️⃣ keycap", "🧑🏿‍💻 technologist", "❤️‍🔥 heart on fire", "emoji😀in😀words",
  "🚀 Launch! 🎉🎉🎉", "☃ ☂ ☀ ★ ☆ ♠ ♥", "🤖:\n  - beep\n  - boop",
  "👩‍❤️‍💋‍👨", "🏴󠁧󠁢󠁳󠁣󠁴󠁿 Scotland",
);

// Unusual whitespace and invisible characters.
add(
  "non\u00a0breaking\u00a0space", "ideographic\u3000space", "em\u2003space thin\u2009space",
  "zero\u200bwidth\u200bspace", "zwj\u200dzwnj\u200c", "line\u2028separator", "para\u2029separator",
  "next\u0085line", "bom\ufeffinside", "\ufeffleading bom", "soft\u00adhyphen", "word\u2060joiner",
  "rtl \u202eoverride\u202c", "null\u0000byte", "bell\u0007 escape\u001b[0m", "del\u007fchar",
  "  \u00a0 \u3000 mixed spaces", "\t\t", "\n", "\r\n", "\n\n", " \n ", "a \n b", "a\n\n b",
  "x\t\ny", "x \t \ny",
);

// Code in several languages.
add(
  "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
  "import numpy as np\nx = np.arange(10).reshape(2, 5)\nprint(x.T @ x)",
  "#include <stdio.h>\nint main(void) {\n\tprintf(\"Hello, %s!\\n\", \"world\");\n\treturn 0;\n}\n",
  "template <typename T>\nstd::vector<T> v{1, 2, 3};\nauto it = v.begin();",
  "fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!(\"{:?}\", v);\n}",
  "const f = async (x) => { await fetch(`/api/${x}`); return x?.y ?? 0; };",
  "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
  "<html><body><div class=\"main\">Hi &amp; bye</div></body></html>",
  "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
  "#!/bin/bash\nfor f in *.txt; do echo \"$f\"; done 2>&1 | tee log",
  "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}",
  "public static void main(String[] args) { System.out.println(args.length); }",
  "x <<= 2; y >>>= 3; z != w && a || !b; i++; --j;",
  "\\begin{equation}\n  E = mc^2 \\quad \\frac{a}{b}\n\\end{equation}",
  "- [ ] todo\n- [x] done\n## Heading\n**bold** _italic_ `code`",
  "# comment\nkey: value\nlist:\n  - a\n  - b",
  "    four spaces\n        eight spaces\n            twelve",
  "if (a) {\n\n\n    b();\n}",
  "// C++ comment\n/* block\n   comment */",
  "lambda x: x**2 if x>0 else -x",
  "matrix[i][j] += alpha * (A[i][k] * B[k][j]);",
  "regex = r'^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\\.[a-zA-Z]{2,}$'",
);

// Special-token strings, whole, partial, adjacent and nested in text.
add(
  "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
  "<｜User｜>Hello<｜Assistant｜>Hi there<｜end▁of▁sentence｜>",
  "<｜begin▁of▁sentence｜>You are helpful.<｜User｜>2+2?<｜Assistant｜>",
  "text<｜end▁of▁sentence｜>more text", "<｜end▁of▁sentence｜><｜end▁of▁sentence｜>",
  "<｜end▁of▁sentence", "end▁of▁sentence｜>", "<｜User", "User｜>", "<｜", "｜>", "<|User|>",
  "<｜user｜>", "< ｜User｜>", "<｜User｜ >", "<<｜User｜>>", "<｜<｜User｜>｜>",
  "<|EOT|>", "<|EOT|", "<|eot|>", "a<|EOT|>b",
  "<｜fim▁begin｜>def f():<｜fim▁hole｜>\n<｜fim▁end｜>",
  "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather",
  "<｜tool▁call▁end｜><｜tool▁calls▁end｜>", "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{}<｜tool▁output▁end｜><｜tool▁outputs▁end｜>",
  "<｜place▁holder▁no▁0｜>", "<｜place▁holder▁no▁42｜>x<｜place▁holder▁no▁799｜>",
  "<｜place▁holder▁no▁800｜>", "<｜▁pad▁｜>", "▁▁▁", "｜｜｜",
  "  <｜User｜>  spaced  <｜Assistant｜>  ", "\n<｜User｜>\n", "<s></s><unk>[CLS][SEP]<|endoftext|>",
  "<｜User｜><｜User｜><｜User｜>", "中文<｜User｜>中文", "123<｜User｜>456",
);

// Punctuation clusters, symbols, mixed scripts.
add(
  "→ ← ↑ ↓ ⇒ ⇔", "∀x∈ℝ: x²≥0", "∑_{i=1}^{n} i = n(n+1)/2", "α β γ δ ε", "°C ± ≈ ≠ ≤ ≥ ∞",
  "©®™ §¶ †‡", "«guillemets» ‹single›", "¿Qué? ¡Sí!", "•bullet ·middot", "⌘⌥⇧ keys",
  "╔═╗║ ║╚═╝ box", "░▒▓█", "♩♪♫♬", "💯%", "$$$", "@@@", "---", "___", "===",
  "a—b–c-d", "x...y…z", "'quoted'", "\"dq\"", "it's", "'s 't 're 've 'm 'll 'd",
  "Hello世界Привет", "日本Japan日本", "abc한국def", "русскийEnglish", "mixed123中文456text",
  "A.B.C.", ".a.b.c", ",a,b,c", "!a!b!c", "?A", "-Abc", "_abc", "/path/to/file.txt",
  "C:\\Windows\\System32", "~/.bashrc", "$HOME/bin", "%PATH%", "a&&b||c", "x->y=>z",
);

// Longer paragraphs and repetition.
add(
  "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.",
  "DeepSeek-V3 is a strong Mixture-of-Experts (MoE) language model with 671B total parameters with 37B activated for each token.",
  "In 1969, Apollo 11 landed on the Moon; Neil Armstrong said: \"That's one small step for [a] man, one giant leap for mankind.\"",
  "ha".repeat(50), "a".repeat(200), " ".repeat(17), "\n".repeat(9), "\t".repeat(5),
  "ab ".repeat(30), "abc\n".repeat(10), "中".repeat(40), "😀".repeat(12), ".".repeat(33),
  "-".repeat(80), "=".repeat(64), "#".repeat(20),
  "Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
);

// Whitespace runs before words, punctuation and newlines (exercise \s+(?!\S)).
for (const ws of [" ", "  ", "   ", "\t", " \t", "\t ", "\u00a0", "\u3000"]) {
  add(`a${ws}b`, `a${ws}`, `${ws}b`, `a${ws}.`, `a${ws}\n`, `${ws}\n${ws}`, `1${ws}2`);
}

// Characters whose whitespace-ness differs between regex engines: JavaScript's
// \s includes U+FEFF but not U+0085; Oniguruma's (HF) and PCRE2's the reverse.
add(
  "a\u0085\u0085b", "x \u0085\ny", "a\u0085 b", " \u0085", "\u0085\u0085",
  "a \ufeff b", "\ufeff \n", "a\ufeff\ufeff", "x\ufeff\ufeff\n\ny", "1\ufeff 2",
  "a\u180e b", "a\u200b \u200bb", "a\u1680\u1680b",
);

// HF runs the Split regexes on Oniguruma, whose Unicode \s includes U+0085
// (NEL) (Oniguruma doc/RE, "Character types"); JavaScript's does not. So where
// NEL follows whitespace, HF keeps the run " \u0085" as one \s+ piece while
// transformers.js splits it into " " and "\u0085". The ids below are the HF
// ones, derived by hand from that piece structure; both are kept in the output.
const KNOWN_DIVERGENT = new Map([
  [" \u0085", [1203, 230]],                   // one piece " \u0085"
  ["x \u0085\ny", [90, 1203, 230, 201, 91]],  // "x", " \u0085\n" (\s*[\r\n]+), "y"
]);

const seen = new Set();
const cases = [];
for (const text of texts) {
  if (seen.has(text)) continue;
  seen.add(text);
  const ids = tokenizer.encode(text, { add_special_tokens: false });
  if (KNOWN_DIVERGENT.has(text)) {
    cases.push({ text, ids: KNOWN_DIVERGENT.get(text), lenml_ids: ids });
  } else {
    cases.push({ text, ids });
  }
}
const out = {
  generator: "make_vectors.mjs with @lenml/tokenizers 3.7.2",
  tokenizer: "deepseek-v3",
  includes_bos: false,
  cases,
};
process.stdout.write(JSON.stringify(out, null, 0).replace(/\{"text"/g, '\n{"text"') + "\n");
process.stderr.write(`${cases.length} cases\n`);
