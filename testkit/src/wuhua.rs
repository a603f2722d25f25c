//! Wuhua County (五华县, Meizhou, Guangdong; division code 441424) as the demo and tests run it:
//! its towns and village codes (re-exported from `tongban_domains::places`, which the nodes and
//! the command line ship) and the sample catalogue (`data/wuhua-catalogue.csv`).

use tongban_domains::catalogue::{ImportErrors, Item, parse_csv};

// The towns and their names ship with every node and the command line; the test kit adds the
// sample catalogue.
pub use tongban_domains::places::{COUNTY_CODE, COUNTY_NAME, TOWNSHIPS, Township, township, village_codes};

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
