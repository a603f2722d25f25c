//! The places a tree serves, by name: Wuhua County (五华县, Meizhou, Guangdong; division code
//! 441424) and its 16 towns, with their village and community counts and the village-tier codes
//! they imply; and the two directions people need — a name or a code typed on the command line
//! turned into a division code ([`place_code`], [`township_code`]), and a code printed with its
//! name next to it ([`label`]).
//!
//! It lives here, in a crate every node and the command line ship, because operators type and
//! read these names every day; the test kit re-exports it for the demo and the tests. Village
//! names are not in the table (no source lists them), so a village prints as its town's name and
//! whether it is a village (村) or a community (社区).
//!
//! Village counts are sourced for Shuizhai, Huacheng and Hedong and assumed for the other towns
//! so that the county total is 411 villages (see `shared/design/domain-notes.md`).

use std::fmt;

use crate::ids::{NodeId, Tier};

/// Division code of Wuhua County.
pub const COUNTY_CODE: &str = "441424";

/// Name of the county in simplified Chinese.
pub const COUNTY_NAME: &str = "五华县";

/// One town of the county and the size of its village tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Township {
    /// 9-digit division code.
    pub code: &'static str,
    /// Name in simplified Chinese.
    pub name: &'static str,
    pub pinyin: &'static str,
    /// Administrative villages (村), coded `…201`, `…202`, ….
    pub villages: u16,
    /// Communities (社区), coded `…001`, `…002`, ….
    pub communities: u16,
}

impl Township {
    const fn new(
        code: &'static str,
        name: &'static str,
        pinyin: &'static str,
        villages: u16,
        communities: u16,
    ) -> Self {
        Township {
            code,
            name,
            pinyin,
            villages,
            communities,
        }
    }

    /// Whether `text` names this town: `水寨镇`, `水寨` or `Shuizhai` (any case).
    fn is_named(&self, text: &str) -> bool {
        text == self.name || Some(text) == self.name.strip_suffix('镇') || text.eq_ignore_ascii_case(self.pinyin)
    }
}

/// The 16 towns of Wuhua County, in code order. Shuizhai (水寨镇) is the county seat.
pub const TOWNSHIPS: [Township; 16] = [
    Township::new("441424100", "水寨镇", "Shuizhai", 24, 6),
    Township::new("441424101", "河东镇", "Hedong", 43, 2),
    Township::new("441424103", "转水镇", "Zhuanshui", 22, 1),
    Township::new("441424104", "华城镇", "Huacheng", 34, 3),
    Township::new("441424106", "岐岭镇", "Qiling", 22, 1),
    Township::new("441424108", "潭下镇", "Tanxia", 22, 1),
    Township::new("441424109", "长布镇", "Changbu", 22, 1),
    Township::new("441424111", "周江镇", "Zhoujiang", 23, 1),
    Township::new("441424113", "横陂镇", "Hengpi", 30, 1),
    Township::new("441424117", "郭田镇", "Guotian", 17, 1),
    Township::new("441424118", "双华镇", "Shuanghua", 20, 1),
    Township::new("441424120", "安流镇", "Anliu", 33, 1),
    Township::new("441424123", "棉洋镇", "Mianyang", 27, 1),
    Township::new("441424125", "梅林镇", "Meilin", 23, 1),
    Township::new("441424126", "华阳镇", "Huayang", 24, 1),
    Township::new("441424127", "龙村镇", "Longcun", 25, 1),
];

/// The town with this 9-digit code, if it is one of Wuhua's.
pub fn township(code: &str) -> Option<&'static Township> {
    TOWNSHIPS.iter().find(|t| t.code == code)
}

/// The 12-digit codes of a town's village tier: its communities (`…001`, `…002`, …) followed by
/// its villages (`…201`, `…202`, …).
pub fn village_codes(township: &Township) -> Vec<String> {
    let communities = (1..=township.communities).map(|n| format!("{}{:03}", township.code, n));
    let villages = (1..=township.villages).map(|n| format!("{}{:03}", township.code, 200 + n));
    communities.chain(villages).collect()
}

/// The name of the place with this division code: `五华县`, `水寨镇`, and for a village point
/// `水寨镇·村` or `水寨镇·社区` (village names are not in the table). `None` for a code
/// outside Wuhua or not a division code at all.
pub fn name(code: &str) -> Option<String> {
    let id = NodeId::new(code).ok()?;
    match id.tier() {
        Tier::County => (id.as_str() == COUNTY_CODE).then(|| COUNTY_NAME.to_owned()),
        Tier::Township => township(id.as_str()).map(|t| t.name.to_owned()),
        Tier::Village => {
            let town = township(code.get(..9)?)?;
            // Communities are numbered from 001, villages from 201 (see `village_codes`).
            let kind = if code.get(9..)? < "200" { "社区" } else { "村" };
            Some(format!("{}·{kind}", town.name))
        }
    }
}

/// `水寨镇 441424100`: the code with its name in front, as every listing prints a node; the code
/// alone when the name is not known, and `-` for an empty code.
pub fn label(code: &str) -> String {
    match name(code) {
        Some(name) => format!("{name} {code}"),
        None if code.is_empty() => "-".to_owned(),
        None => code.to_owned(),
    }
}

/// A name or code that names no place this command can use, with what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPlace {
    text: String,
    townships_only: bool,
}

impl fmt::Display for UnknownPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let towns: Vec<String> = TOWNSHIPS.iter().map(|t| format!("{} {}", t.name, t.code)).collect();
        if self.townships_only {
            write!(
                f,
                "没有名为 {:?} 的镇（unknown township）。可用镇名或 9 位区划代码：{}",
                self.text,
                towns.join("、")
            )
        } else {
            write!(
                f,
                "没有名为 {:?} 的地点（unknown place）。可用{} {}、镇名或区划代码（县 6 位、镇 9 位、村 12 位）：{}",
                self.text,
                COUNTY_NAME,
                COUNTY_CODE,
                towns.join("、")
            )
        }
    }
}

impl std::error::Error for UnknownPlace {}

/// The division code `text` names: a code of any tier (`441424`, `441424100`, `441424100201`),
/// the county's name (`五华县`, `五华`), or a town's (`水寨镇`, `水寨`, `Shuizhai`).
pub fn place_code(text: &str) -> Result<String, UnknownPlace> {
    let text = text.trim();
    if let Ok(id) = NodeId::new(text) {
        return Ok(id.to_string());
    }
    if text == COUNTY_NAME || Some(text) == COUNTY_NAME.strip_suffix('县') {
        return Ok(COUNTY_CODE.to_owned());
    }
    match TOWNSHIPS.iter().find(|t| t.is_named(text)) {
        Some(t) => Ok(t.code.to_owned()),
        None => Err(UnknownPlace {
            text: text.to_owned(),
            townships_only: false,
        }),
    }
}

/// The 9-digit code of the township `text` names: its code or its name (`水寨镇`, `水寨`,
/// `Shuizhai`). A county or village code is refused: the option wants a township.
pub fn township_code(text: &str) -> Result<String, UnknownPlace> {
    let unknown = || UnknownPlace {
        text: text.trim().to_owned(),
        townships_only: true,
    };
    let code = place_code(text).map_err(|_| unknown())?;
    match NodeId::new(code.as_str()).map(|id| id.tier()) {
        Ok(Tier::Township) => Ok(code),
        _ => Err(unknown()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn towns_and_villages_add_up() {
        let villages: u32 = TOWNSHIPS.iter().map(|t| u32::from(t.villages)).sum();
        assert_eq!(villages, 411);
        let mut all = HashSet::new();
        let mut village_count = 0;
        for t in &TOWNSHIPS {
            let town = NodeId::new(t.code).unwrap();
            assert_eq!(town.tier(), Tier::Township);
            assert_eq!(town.county().as_str(), COUNTY_CODE);
            let codes = village_codes(t);
            assert_eq!(codes.len(), usize::from(t.villages + t.communities));
            for code in &codes {
                let id = NodeId::new(code.as_str()).unwrap();
                assert_eq!(id.tier(), Tier::Village);
                assert_eq!(id.parent(), Some(town.clone()));
                if &code[9..] >= "201" {
                    village_count += 1;
                }
                assert!(all.insert(code.clone()), "{code} twice");
            }
        }
        assert_eq!(village_count, 411);
        assert_eq!(village_codes(&TOWNSHIPS[0])[0], "441424100001");
        assert_eq!(village_codes(&TOWNSHIPS[0])[6], "441424100201");
        assert_eq!(township("441424104").map(|t| t.name), Some("华城镇"));
        assert_eq!(township("441424102"), None);
    }

    #[test]
    fn names_and_codes_both_name_a_place() {
        for text in ["水寨镇", "水寨", "Shuizhai", "shuizhai", " 441424100 "] {
            assert_eq!(place_code(text).unwrap(), "441424100", "{text}");
            assert_eq!(township_code(text).unwrap(), "441424100", "{text}");
        }
        assert_eq!(place_code("五华县").unwrap(), COUNTY_CODE);
        assert_eq!(place_code("441424104201").unwrap(), "441424104201");
        // Any well-formed code is taken, inside Wuhua or not: the node judges it.
        assert_eq!(place_code("441481").unwrap(), "441481");
    }

    #[test]
    fn unknown_names_are_refused_with_what_is_accepted() {
        let err = township_code("水寨县").unwrap_err().to_string();
        assert!(err.contains("\"水寨县\""), "{err}");
        assert!(
            err.contains("水寨镇 441424100") && err.contains("龙村镇 441424127"),
            "{err}"
        );
        let err = township_code("441424").unwrap_err().to_string();
        assert!(
            err.contains("unknown township"),
            "a county code is not a township: {err}"
        );
        let err = place_code("梅州").unwrap_err().to_string();
        assert!(
            err.contains("五华县 441424") && err.contains("华城镇 441424104"),
            "{err}"
        );
    }

    #[test]
    fn labels_put_the_name_before_the_code() {
        assert_eq!(label("441424104"), "华城镇 441424104");
        assert_eq!(label("441424"), "五华县 441424");
        assert_eq!(label("441424100201"), "水寨镇·村 441424100201");
        assert_eq!(label("441424100001"), "水寨镇·社区 441424100001");
        assert_eq!(label("441424102"), "441424102", "not a Wuhua town: the code alone");
        assert_eq!(label("441481"), "441481");
        assert_eq!(label(""), "-");
        assert_eq!(label("not a code"), "not a code");
    }
}
