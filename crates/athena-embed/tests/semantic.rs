//! The vectors mean something: for each query the right passage outscores the wrong ones, within
//! English, within Chinese, and across the two languages.

mod common;

use common::{dot, embedder};

/// (query, right passage, wrong passages)
const TRIPLES: &[(&str, &str, &[&str])] = &[
    (
        "how do I bake sourdough bread at home?",
        "Mix flour, water and an active starter, let the dough ferment overnight, shape it, and bake it in a hot Dutch oven for about forty minutes.",
        &[
            "The stock market fell sharply on Tuesday after the central bank raised interest rates.",
            "Jupiter is the largest planet in the solar system and has dozens of moons.",
            "To renew a passport, submit the application form with two photos and the old passport.",
        ],
    ),
    (
        "symptoms of a vitamin D deficiency",
        "People lacking vitamin D often feel tired, suffer bone pain and muscle weakness, and may get sick more often.",
        &[
            "Vitamin is a common word in advertising for breakfast cereals and juices.",
            "The football match ended in a draw after extra time.",
            "Python lists can be sorted in place with the sort method.",
        ],
    ),
    (
        "如何提高睡眠质量？",
        "保持规律的作息时间，睡前避免使用手机，卧室保持安静和黑暗，有助于更快入睡并睡得更深。",
        &[
            "这家餐厅的火锅非常辣，价格也比较便宜。",
            "长城是中国古代的军事防御工程，全长两万多公里。",
            "股票市场今天大幅下跌，投资者情绪低迷。",
        ],
    ),
    (
        "電子書閱讀器可以做筆記嗎？",
        "大多數電子書閱讀器支援劃線和加入筆記，並能將標註同步到其他裝置。",
        &[
            "今天台北的天氣晴朗，氣溫約攝氏二十八度。",
            "這道紅燒肉需要用小火慢燉兩個小時。",
        ],
    ),
    // Cross-language: a Chinese question about English passages, and the reverse.
    (
        "猫为什么喜欢晒太阳？",
        "Cats love lying in the sun because the warmth helps them keep their body temperature up without spending energy.",
        &[
            "The train to Berlin departs from platform nine at half past six.",
            "Solar panels convert sunlight into electricity using photovoltaic cells.",
            "Dogs need to be walked at least twice a day.",
        ],
    ),
    (
        "What is the capital of France?",
        "巴黎是法国的首都，也是该国最大的城市。",
        &[
            "东京是日本的首都，人口超过一千万。",
            "法国菜以奶酪和葡萄酒闻名。",
            "长江是中国最长的河流。",
        ],
    ),
];

#[test]
fn right_passage_scores_highest() {
    let Some(m) = embedder() else { return };
    for (query, right, wrong) in TRIPLES {
        let q = m.embed_query(query).unwrap();
        let mut texts = vec![*right];
        texts.extend_from_slice(wrong);
        let passages = m.embed_passages(&texts).unwrap();
        let scores: Vec<f32> = passages.iter().map(|p| dot(&q, p)).collect();
        eprintln!("{query}: {scores:.3?}");
        for (w, s) in wrong.iter().zip(&scores[1..]) {
            assert!(scores[0] > *s, "{query:?}: right {} <= wrong {s} ({w:?})", scores[0]);
        }
    }
}

#[test]
fn translations_are_near_each_other() {
    let Some(m) = embedder() else { return };
    let v = m
        .embed_passages(&[
            "The library opens at nine in the morning.",
            "图书馆早上九点开门。",
            "圖書館早上九點開門。",
            "Quantum chromodynamics describes the strong interaction between quarks.",
        ])
        .unwrap();
    let same = dot(&v[0], &v[1]);
    let trad = dot(&v[1], &v[2]);
    let other = dot(&v[0], &v[3]);
    eprintln!("en-zh {same:.3}, simplified-traditional {trad:.3}, unrelated {other:.3}");
    assert!(same > other && trad > other && trad > same);
}
