//! Text to search tokens: normalised, segmented with jieba (one dictionary per process, with the
//! fleet's own words added), stop words and punctuation dropped. Documents and queries go through
//! the same code, so a query word is found exactly when the document produced the same token.

use std::{collections::HashSet, sync::LazyLock};

use jieba_rs::Jieba;

/// Words of the trade jieba's general dictionary splits or does not know; added so they stay
/// whole (追尾 as one token, not 追 + 尾).
const DOMAIN_WORDS: &[&str] = &[
    "网约车",
    "追尾",
    "被追尾",
    "剐蹭",
    "刮蹭",
    "擦碰",
    "保养",
    "小保养",
    "大保养",
    "年检",
    "年审",
    "验车",
    "上牌",
    "爆胎",
    "换机油",
    "机油",
    "机滤",
    "刹车片",
    "刹车盘",
    "蓄电池",
    "电瓶",
    "亏电",
    "异响",
    "怪声",
    "违章",
    "违停",
    "罚单",
    "扣分",
    "交警",
    "交巡警",
    "定损",
    "理赔",
    "出险",
    "报险",
    "报案",
    "拖车",
    "道路救援",
    "漏油",
    "渗油",
    "雨刮",
    "雨刷",
    "胎压",
    "全责",
    "次责",
    "同责",
    "无责",
    "行车记录仪",
    "保险杠",
    "后视镜",
    "倒车影像",
    "加氟",
    "四轮定位",
    "动平衡",
    "钣金",
    "喷漆",
    "补漆",
    "前挡",
    "挡风玻璃",
    "冷却液",
    "防冻液",
    "变速箱",
    "波箱",
    "故障灯",
    "充电桩",
    "快充",
    "慢充",
    "续航",
    "掉电",
    "新能源",
    "滴滴",
    "高德",
    "曹操",
    "如祺",
    "花小猪",
    "接单",
    "派单",
    "封号",
    "租金",
    "押金",
    "续租",
    "退车",
    "交车",
    "提车",
    "还车",
    "车损",
    "开票",
    "维修厂",
    "修理厂",
    "4s店",
    "没电",
    "打不着火",
    "熄火",
    "抛锚",
    "趴窝",
    "掉漆",
    "刮花",
    "凹陷",
    "划痕",
    "冒烟",
    "跑偏",
    "方向盘",
    "电动车",
    "外卖车",
    "快递车",
    "泥头车",
    "渣土车",
];

/// Words too common in any text to tell reports apart.
const STOP_WORDS: &[&str] = &[
    "的", "地", "得", "了", "着", "过", "在", "是", "和", "与", "及", "或", "就", "都", "也", "还",
    "又", "把", "将", "被", "吧", "呢", "啊", "吗", "呀", "嘛", "哦", "哈", "呗", "啦", "这", "那",
    "个", "之", "我", "你", "他", "她", "它", "我们", "你们", "他们", "一下", "一个", "有", "然后",
    "就是", "这个", "那个", "有点", "已经", "the", "a", "an", "and", "of", "to", "is",
];

static JIEBA: LazyLock<Jieba> = LazyLock::new(|| {
    let mut jieba = Jieba::new();
    for word in DOMAIN_WORDS {
        // High enough to win against splits the general dictionary prefers.
        let freq = jieba.suggest_freq(word).max(2_000);
        jieba.add_word(word, Some(freq), None);
    }
    jieba
});

static STOP: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| STOP_WORDS.iter().copied().collect());

const PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";

/// A token and where it stands in the text it came from, in characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub word: String,
    pub start: usize,
    pub end: usize,
}

/// One character in its search form: full-width forms to ASCII, the ideographic space to a
/// space, ASCII lower case. One character in, one out, so positions in the normalised text are
/// positions in the original.
pub(crate) fn normalize_char(c: char) -> char {
    let c = match u32::from(c) {
        0x3000 => ' ',
        n @ 0xFF01..=0xFF5E => char::from_u32(n - 0xFEE0).unwrap_or(c),
        _ => c,
    };
    c.to_ascii_lowercase()
}

pub(crate) fn normalize(text: &str) -> String {
    text.chars().map(normalize_char).collect()
}

/// Tokens of `text` in search mode (each word and the shorter dictionary words inside it), with
/// their positions: what a document is indexed under, and what highlighting marks.
///
/// jieba's choice of words depends on the neighbours: 没电 is one word in 车没电了 but 没 / 电 in
/// 电瓶没电打不着火, and its HMM joins unknown neighbours into words of its own (倒车时撞到 gives
/// 时撞). Search mode alone would then hide a word the query asks for. So a document also gets
/// every dictionary word of two or more characters that occurs in it, wherever jieba cut (its
/// full mode), and the single characters of a word jieba made up; a query word jieba made up asks for its characters instead (see
/// [`is_made_up`]).
pub(crate) fn search_tokens(text: &str) -> Vec<Token> {
    segment(text, Mode::Search)
}

/// The words of `text` (precise mode, no overlapping parts): what a query asks for.
pub(crate) fn words(text: &str) -> Vec<String> {
    segment(text, Mode::Precise)
        .into_iter()
        .map(|t| t.word)
        .collect()
}

/// The space-joined tokens a document is indexed under: its title's and its body's.
pub(crate) fn index_text(title: &str, body: &str) -> String {
    let mut out = String::with_capacity((title.len() + body.len()) * 2);
    for t in search_tokens(title).into_iter().chain(search_tokens(body)) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&t.word);
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Search,
    Precise,
}

fn segment(text: &str, mode: Mode) -> Vec<Token> {
    let norm: Vec<char> = text.chars().map(normalize_char).collect();
    let mut out = Vec::new();
    let mut from = 0;
    // Plates are found before jieba sees the text: it would cut 粤B·12345 into 粤 / b / 12345.
    for plate in plates(&norm) {
        cut_run(&norm[from..plate.start], from, mode, &mut out);
        push_plate(&norm, &plate, mode, &mut out);
        from = plate.end;
    }
    cut_run(&norm[from..], from, mode, &mut out);
    out
}

struct Plate {
    start: usize,
    end: usize,
}

/// Licence plates in normalised text: a province, the office letter, an optional separator
/// (`·`, `.`, `-`, a space), then five or six letters and digits (or four and 挂 / 学).
fn plates(s: &[char]) -> Vec<Plate> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if PROVINCES.contains(s[i])
            && let Some(end) = plate_at(s, i)
        {
            found.push(Plate { start: i, end });
            i = end;
        } else {
            i += 1;
        }
    }
    found
}

fn plate_at(s: &[char], i: usize) -> Option<usize> {
    let office = *s.get(i + 1)?;
    if !office.is_ascii_lowercase() {
        return None;
    }
    let mut j = i + 2;
    if matches!(s.get(j), Some('·' | '•' | '.' | '-' | ' ')) {
        j += 1;
    }
    let serial_start = j;
    while j < s.len() && (s[j].is_ascii_lowercase() || s[j].is_ascii_digit()) {
        j += 1;
    }
    let n = j - serial_start;
    let special = n == 4 && matches!(s.get(j), Some('挂' | '学'));
    if special {
        j += 1;
    }
    // A longer run of letters and digits is something else (a VIN, an order number).
    let digits = s[serial_start..serial_start + n]
        .iter()
        .any(char::is_ascii_digit);
    ((n == 5 || n == 6 || special) && digits).then_some(j)
}

/// A plate is found whole (粤b12345), by what follows the province (b12345), and by its serial
/// (12345), the way people type it.
fn push_plate(s: &[char], p: &Plate, mode: Mode, out: &mut Vec<Token>) {
    let plain: Vec<(usize, char)> = (p.start..p.end)
        .map(|k| (k, s[k]))
        .filter(|(_, c)| c.is_alphanumeric())
        .collect();
    let word = |from: usize| plain[from..].iter().map(|(_, c)| *c).collect::<String>();
    out.push(Token {
        word: word(0),
        start: p.start,
        end: p.end,
    });
    if mode == Mode::Search {
        for from in [1, 2] {
            if let Some((start, _)) = plain.get(from) {
                out.push(Token {
                    word: word(from),
                    start: *start,
                    end: p.end,
                });
            }
        }
    }
}

fn cut_run(run: &[char], offset: usize, mode: Mode, out: &mut Vec<Token>) {
    if run.is_empty() {
        return;
    }
    let text: String = run.iter().collect();
    let mut tokens = match mode {
        Mode::Search => JIEBA.cut_for_search(&text, true),
        Mode::Precise => JIEBA.cut(&text, true),
    };
    if mode == Mode::Search {
        let mut extra = Vec::new();
        for t in &tokens {
            let word: &str = t.word;
            if is_made_up(word) {
                for (k, (b, c)) in word.char_indices().enumerate() {
                    extra.push(jieba_rs::Token {
                        word: &word[b..b + c.len_utf8()],
                        start: t.start + k,
                        end: t.start + k + 1,
                        byte_start: t.byte_start + b,
                        byte_end: t.byte_start + b + c.len_utf8(),
                    });
                }
            }
        }
        let seen: HashSet<(usize, usize)> = tokens.iter().map(|t| (t.start, t.end)).collect();
        extra.extend(
            JIEBA
                .cut_all(&text)
                .into_iter()
                .filter(|t| t.end - t.start > 1 && !seen.contains(&(t.start, t.end))),
        );
        tokens.extend(extra);
    }
    for t in tokens {
        for (word, start, end) in clean(t.word, t.start) {
            if !STOP.contains(word.as_str()) {
                out.push(Token {
                    word,
                    start: offset + start,
                    end: offset + end,
                });
            }
        }
    }
}

/// Characters in so many reports that, alone, they tell nothing and cost the index a long list
/// to read: a made-up word of the query is not split into these (see `plan`).
const COMMON_CHARS: &str = "的了在是和与就都也还又把被给到上下车有不个人我你他她它们说去来后前大小多能会要对从这那里外中左右开打看过没时";

/// Whether a character of a made-up word is worth asking for on its own.
pub(crate) fn is_telling_char(c: char) -> bool {
    !COMMON_CHARS.contains(c)
}

/// A word of several Chinese characters that is in no dictionary: jieba's HMM joined them.
pub(crate) fn is_made_up(word: &str) -> bool {
    word.chars().count() > 1 && word.chars().all(is_han) && !JIEBA.has_word(word)
}

fn is_han(c: char) -> bool {
    matches!(u32::from(c), 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// The searchable parts of a jieba token starting at character `start`: runs of letters and
/// digits, where a dot between two digits (3.5万) stays; punctuation and spaces are no tokens.
/// Both databases' tokenizers then see exactly these words and nothing to split further.
fn clean(word: &str, start: usize) -> Vec<(String, usize, usize)> {
    let chars: Vec<char> = word.chars().collect();
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut cur_start = 0;
    for (k, &c) in chars.iter().enumerate() {
        let keep = c.is_alphanumeric()
            || (c == '.'
                && k > 0
                && chars[k - 1].is_ascii_digit()
                && chars.get(k + 1).is_some_and(char::is_ascii_digit));
        if keep {
            if cur.is_empty() {
                cur_start = k;
            }
            cur.push(c);
        } else if !cur.is_empty() {
            parts.push((std::mem::take(&mut cur), start + cur_start, start + k));
        }
    }
    if !cur.is_empty() {
        parts.push((cur, start + cur_start, start + chars.len()));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(text: &str) -> Vec<String> {
        search_tokens(text).into_iter().map(|t| t.word).collect()
    }

    #[test]
    fn plates_and_mileage_survive_as_tokens() {
        let t = search("粤B12345 今天在深南大道被追尾，里程35000公里，油耗3.5升");
        for w in [
            "粤b12345",
            "b12345",
            "12345",
            "追尾",
            "35000",
            "公里",
            "3.5",
        ] {
            assert!(t.contains(&w.to_owned()), "{w} missing from {t:?}");
        }
        // Nothing that is only punctuation or a stop word.
        assert!(
            !t.iter()
                .any(|w| w == "," || w == "，" || w == "在" || w == " ")
        );
    }

    #[test]
    fn a_plate_with_a_separator_or_full_width_letters_is_the_same_plate() {
        for written in ["粤B·12345", "粤Ｂ１２３４５", "粤b 12345", "粤B12345"] {
            assert_eq!(words(written), vec!["粤b12345"], "{written}");
        }
        assert_eq!(words("粤B·D12345"), vec!["粤bd12345"]);
        assert_eq!(words("粤B1234学"), vec!["粤b1234学"]);
        // A VIN is not a plate, nor is a longer code after a province.
        assert_eq!(words("LSVAU2180N2183294"), vec!["lsvau2180n2183294"]);
        assert!(!words("粤B1234567").contains(&"粤b1234567".to_owned()));
    }

    #[test]
    fn domain_words_stay_whole() {
        for w in [
            "网约车",
            "追尾",
            "剐蹭",
            "保养",
            "年检",
            "验车",
            "上牌",
            "爆胎",
            "漏油",
            "异响",
        ] {
            assert_eq!(words(w), vec![w.to_owned()], "{w}");
        }
        assert!(words("今天去验车了").contains(&"验车".to_owned()));
        assert!(words("右后门被剐蹭").contains(&"剐蹭".to_owned()));
    }

    #[test]
    fn full_width_and_upper_case_ascii_are_folded() {
        assert_eq!(normalize("ＡＢＣ　ｄ１"), "abc d1");
        assert_eq!(words("ＡＢＳ故障灯亮"), words("abs故障灯亮"));
        assert!(words("ABS故障灯亮").contains(&"abs".to_owned()));
    }

    #[test]
    fn search_mode_also_gives_the_words_inside_longer_ones() {
        let t = search("中华人民共和国");
        assert!(t.contains(&"中华".to_owned()) && t.contains(&"中华人民共和国".to_owned()));
    }

    #[test]
    fn positions_point_at_the_original_characters() {
        let text = "ＡＢ，粤B·12345追尾";
        let chars: Vec<char> = text.chars().collect();
        for t in search_tokens(text) {
            let original: String = chars[t.start..t.end].iter().collect();
            assert_eq!(
                normalize(&original)
                    .chars()
                    .filter(|c| c.is_alphanumeric() || *c == '.')
                    .collect::<String>(),
                t.word,
                "{t:?}"
            );
        }
    }

    #[test]
    fn index_text_joins_title_and_body_tokens_with_spaces() {
        let s = index_text("粤B12345 事故", "被追尾了");
        assert!(s.starts_with("粤b12345 "));
        assert!(s.split(' ').any(|w| w == "追尾"));
        assert!(!s.contains("  "));
    }
}

#[cfg(test)]
mod scratch {
    #[test]
    fn scratch_print() {
        for s in [
            "撞车尾",
            "后车撞",
            "轮胎破了",
            "胎爆了",
            "蹭了一下",
            "换机油",
            "有声音",
            "没电了",
            "交巡警",
            "刹车片磨损严重",
            "在南山区科技园被一辆电动车蹭了",
            "车辆年审",
            "违章停车罚单",
            "发动机故障灯亮了",
            "空调不制冷",
            "电瓶没电打不着火",
            "左前轮胎压低",
            "倒车时撞到柱子",
            "后保险杠刮花了",
            "深圳市南山区",
            "被后车追尾了对方全责",
        ] {
            eprintln!(
                "{s} => precise {:?} search {:?}",
                super::words(s),
                super::search_tokens(s)
                    .into_iter()
                    .map(|t| t.word)
                    .collect::<Vec<_>>()
            );
        }
    }
}
