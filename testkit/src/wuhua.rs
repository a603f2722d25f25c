//! Wuhua County (五华县, Meizhou, Guangdong; division code 441424): its 16 towns with their
//! village and community counts, the village-tier codes they imply, and the sample catalogue
//! (`data/wuhua-catalogue.csv`) the demo and tests run on.
//!
//! Village counts are sourced for Shuizhai, Huacheng and Hedong and assumed for the other towns
//! so that the county total is 411 villages (see `shared/design/domain-notes.md`).

use tongban_domains::catalogue::{ImportErrors, Item, parse_csv};

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

/// The sample catalogue: 1,913 items, 489 of them delegated to the towns (345 government-service
/// and 144 public-service items). Format: `data/README.md`.
pub const SAMPLE_CATALOGUE_CSV: &str = include_str!("../../data/wuhua-catalogue.csv");

/// The sample catalogue, parsed.
pub fn sample_catalogue() -> Result<Vec<Item>, ImportErrors> {
    parse_csv(SAMPLE_CATALOGUE_CSV.as_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use tongban_domains::catalogue::{Category, DelegationMode, ItemLevel, catalogue_hash_of};
    use tongban_domains::ids::{NodeId, Tier};

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
    fn sample_catalogue_has_the_seed_counts() {
        let items = sample_catalogue().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(items.len(), 1913);
        let delegated: Vec<&Item> = items.iter().filter(|i| i.is_delegated()).collect();
        assert_eq!(delegated.len(), 489);
        let gov = delegated
            .iter()
            .filter(|i| i.category == Category::GovernmentService)
            .count();
        assert_eq!((gov, delegated.len() - gov), (345, 144));
        for batch in [1, 2] {
            assert!(delegated.iter().any(|i| i.batch == batch), "no batch {batch}");
        }
        for mode in [DelegationMode::Authorised, DelegationMode::Entrusted] {
            assert!(delegated.iter().any(|i| i.delegation == mode));
        }
        assert!(items.iter().any(|i| i.level == ItemLevel::Village));
        let not_delegated = items.iter().filter(|i| !i.is_delegated());
        assert!(not_delegated.clone().any(|i| i.category == Category::PublicService));
        assert!(
            not_delegated
                .clone()
                .all(|i| i.level == ItemLevel::County && i.batch == 0)
        );
        for t in &TOWNSHIPS {
            let own = items.iter().filter(|i| i.delegated_to(t.code)).count();
            assert!(own > 0, "{} sees nothing", t.name);
            assert!(items.iter().any(|i| i.visible_to_village(t.code)));
            // Listed townships belong to the county.
            for i in &items {
                assert!(i.townships.iter().all(|c| township(c).is_some()), "{}", i.key());
            }
        }
        let keys: HashSet<&str> = items.iter().map(Item::key).collect();
        assert_eq!(keys.len(), items.len());
        // The whole sample survives JSON, CSV and protobuf round trips.
        let json = tongban_domains::catalogue::to_json(&items).unwrap();
        assert_eq!(tongban_domains::catalogue::parse_json(json.as_bytes()).unwrap(), items);
        let csv = tongban_domains::catalogue::to_csv(&items).unwrap();
        assert_eq!(parse_csv(csv.as_bytes()).unwrap(), items);
        for item in &items {
            let wire = tongban_proto::v1::CatalogueItem::from(item);
            assert_eq!(&Item::try_from(wire).unwrap(), item);
        }
        // Hashing the whole sample is stable and order-independent.
        let forward = catalogue_hash_of(&items);
        let backward = catalogue_hash_of(items.iter().rev());
        assert_eq!(forward, backward);
    }
}
