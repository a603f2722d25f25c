//! Test catalogues and their import through the county's real `CataloguePublishing.Import` RPC.
//!
//! [`small_catalogue`] is seven hand-made items that cover every way an item can be visible:
//! to all townships or to some, with or without village intake, village-level public services,
//! county-only items, and each delegation mode. [`expected_codes`] states, by hand, which of them
//! each node of the test tree lists, so the scenarios check the engine against a fixed answer
//! rather than against its own visibility rules.

use std::collections::BTreeSet;

use tongban_domains::catalogue::{
    Category, DelegationMode, Item, ItemLevel, ItemType, Material, MaterialForm, SealType, WindowType, to_csv, to_json,
};
use tongban_domains::ids::{NodeId, Tier};
use tongban_proto::v1::{
    self as pb, catalogue_client::CatalogueClient, catalogue_publishing_client::CataloguePublishingClient,
};
use tonic::transport::Channel;
use tonic::{Response, Status};

use crate::{COUNTY, T1, T1_VILLAGES, T2, T2_VILLAGES};

/// A valid item handled at the county only (not delegated, no township front desk).
pub fn county_item(implementation_code: &str, item_code: &str, name: &str) -> Item {
    Item {
        item_code: item_code.to_owned(),
        implementation_code: implementation_code.to_owned(),
        name: name.to_owned(),
        item_type: ItemType::Licence,
        category: Category::GovernmentService,
        domain: "自然资源和规划".to_owned(),
        department: "五华县自然资源局".to_owned(),
        delegation: DelegationMode::NotDelegated,
        batch: 0,
        all_townships: false,
        townships: Vec::new(),
        village_intake: false,
        level: ItemLevel::County,
        window: WindowType::Comprehensive,
        statutory_days: 20,
        promised_days: 10,
        immediate: false,
        materials: vec![
            Material {
                name: "申请人居民身份证".to_owned(),
                required: true,
                form: MaterialForm::Copy,
                pages: 1,
            },
            Material {
                name: "申请表".to_owned(),
                required: true,
                form: MaterialForm::Original,
                pages: 2,
            },
        ],
        originals_to_county: false,
        seal: SealType::County,
    }
}

/// Makes `item` delegated in `mode` (batch 1) to `townships` (`None`: all townships), fixing its
/// seal so it stays valid.
pub fn delegate(mut item: Item, mode: DelegationMode, townships: Option<&[&str]>) -> Item {
    item.delegation = mode;
    item.batch = if mode.is_delegated() { 1 } else { 0 };
    match townships {
        None => {
            item.all_townships = true;
            item.townships = Vec::new();
        }
        Some(list) => {
            item.all_townships = false;
            item.townships = list.iter().map(|t| (*t).to_owned()).collect();
        }
    }
    item.level = if mode.is_delegated() {
        ItemLevel::Township
    } else {
        item.level
    };
    item.seal = SealType::derive(item.delegation, item.category);
    item
}

/// Seven items; see the module comment and [`expected_codes`].
pub fn small_catalogue() -> Vec<Item> {
    let mut all = delegate(
        county_item("T-ALL", "000201001000", "农村村民住宅用地审批"),
        DelegationMode::Authorised,
        None,
    );
    all.village_intake = true;

    let mut only_t1 = delegate(
        county_item("T-T1", "000105023000", "个体工商户设立登记"),
        DelegationMode::Entrusted,
        Some(&[T1]),
    );
    only_t1.batch = 2;

    let mut only_t2 = county_item("T-T2", "000114003000", "城乡居民基本养老保险参保登记");
    only_t2.category = Category::PublicService;
    only_t2.item_type = ItemType::PublicService;
    let mut only_t2 = delegate(only_t2, DelegationMode::Authorised, Some(&[T2]));
    only_t2.village_intake = true;

    let county_only = county_item("T-COUNTY", "000211008000", "乡村建设规划许可证核发");

    let mut village_level = county_item("T-VILLAGE", "000132015000", "计划生育家庭奖励扶助金发放");
    village_level.category = Category::PublicService;
    village_level.item_type = ItemType::PublicService;
    village_level.level = ItemLevel::Village;
    village_level.immediate = true;
    village_level.promised_days = 0;
    village_level.seal = SealType::derive(village_level.delegation, village_level.category);

    // Not delegated, but T1's front desk accepts it and its villages take applications too.
    let mut desk_t1 = delegate(
        county_item("T-DESK-T1", "000119007000", "特困人员救助供养审批"),
        DelegationMode::NotDelegated,
        Some(&[T1]),
    );
    desk_t1.village_intake = true;
    desk_t1.originals_to_county = true;

    let mut entrusted_ps = county_item("T-ENTRUSTED-PS", "000117004000", "医疗救助申请");
    entrusted_ps.category = Category::PublicService;
    entrusted_ps.item_type = ItemType::Benefit;
    let entrusted_ps = delegate(entrusted_ps, DelegationMode::Entrusted, Some(&[T1, T2]));

    let items = vec![all, only_t1, only_t2, county_only, village_level, desk_t1, entrusted_ps];
    for item in &items {
        let problems = item.validate();
        assert!(problems.is_empty(), "test item {} is invalid: {problems:?}", item.key());
    }
    items
}

/// Which implementation codes of [`small_catalogue`] node `node` lists, stated by hand.
pub fn expected_codes(node: &str) -> BTreeSet<String> {
    let codes: &[&str] = if node == COUNTY {
        &[
            "T-ALL",
            "T-T1",
            "T-T2",
            "T-COUNTY",
            "T-VILLAGE",
            "T-DESK-T1",
            "T-ENTRUSTED-PS",
        ]
    } else if node == T1 {
        &["T-ALL", "T-T1", "T-DESK-T1", "T-ENTRUSTED-PS"]
    } else if node == T2 {
        &["T-ALL", "T-T2", "T-ENTRUSTED-PS"]
    } else if T1_VILLAGES.contains(&node) {
        &["T-ALL", "T-VILLAGE", "T-DESK-T1"]
    } else if T2_VILLAGES.contains(&node) {
        &["T-ALL", "T-T2", "T-VILLAGE"]
    } else {
        panic!("no expectation written for node {node}")
    };
    codes.iter().map(|c| (*c).to_owned()).collect()
}

/// Which implementation codes of any catalogue `node` should list, from the domain rules of
/// `Item` (for the large sample catalogue, where a hand-written answer is impractical).
pub fn visible_codes(items: &[Item], node: &NodeId) -> BTreeSet<String> {
    items
        .iter()
        .filter(|item| match node.tier() {
            Tier::County => true,
            Tier::Township => item.available_to_township(node.as_str()),
            Tier::Village => node.parent().is_some_and(|t| item.visible_to_village(t.as_str())),
        })
        .map(|item| item.key().to_owned())
        .collect()
}

/// The Wuhua sample catalogue, or `None` while `data/wuhua-catalogue.csv` is still empty.
pub fn sample_catalogue() -> Option<Vec<Item>> {
    if tongban_testkit::wuhua::SAMPLE_CATALOGUE_CSV.trim().is_empty() {
        return None;
    }
    match tongban_testkit::wuhua::sample_catalogue() {
        Ok(items) if !items.is_empty() => Some(items),
        Ok(_) => None,
        Err(e) => panic!("the sample catalogue does not parse: {e}"),
    }
}

/// The items as the JSON that `CataloguePublishing.Import` reads (`tongban_domains::catalogue::to_json`).
pub fn json_bytes(items: &[Item]) -> Vec<u8> {
    to_json(items)
        .unwrap_or_else(|e| panic!("cannot serialise test items: {e}"))
        .into_bytes()
}

/// The items as the CSV that `CataloguePublishing.Import` reads.
pub fn csv_text(items: &[Item]) -> String {
    to_csv(items).unwrap_or_else(|e| panic!("cannot write test items as CSV: {e}"))
}

/// A catalogue client on an operator channel, accepting the large responses a full catalogue
/// listing can produce.
pub fn client(channel: Channel) -> CatalogueClient<Channel> {
    CatalogueClient::new(channel).max_decoding_message_size(64 * 1024 * 1024)
}

/// Calls `CataloguePublishing.Import` with raw bytes in `format`.
pub async fn import_raw(
    channel: Channel,
    format: pb::ImportFormat,
    content: Vec<u8>,
    note: &str,
) -> Result<pb::ImportCatalogueResponse, Status> {
    CataloguePublishingClient::new(channel)
        .import(pb::ImportCatalogueRequest {
            format: format as i32,
            content,
            source: "scenario-test.json".to_owned(),
            note: note.to_owned(),
        })
        .await
        .map(Response::into_inner)
}

/// Imports `items` as JSON through the real RPC; panics if the county refuses.
pub async fn import(channel: Channel, items: &[Item], note: &str) -> pb::ImportCatalogueResponse {
    import_raw(channel, pb::ImportFormat::Json, json_bytes(items), note)
        .await
        .unwrap_or_else(|s| panic!("CataloguePublishing.Import refused the test catalogue ({note}): {s:?}"))
}

/// Every item a node lists (all pages of `ListItems`) and the version it answered at.
pub async fn list_all(channel: Channel) -> (u64, Vec<pb::CatalogueItem>) {
    let mut client = client(channel);
    let mut items = Vec::new();
    let mut token = String::new();
    let mut version = None;
    loop {
        let page = client
            .list_items(pb::ListItemsRequest {
                page_size: 200,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("ListItems failed: {s:?}"))
            .into_inner();
        match version {
            None => version = Some(page.version),
            Some(v) => assert_eq!(v, page.version, "catalogue version changed between pages"),
        }
        items.extend(page.items);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    (version.unwrap_or(0), items)
}

/// The implementation codes a node lists.
pub async fn listed_codes(channel: Channel) -> (u64, BTreeSet<String>) {
    let (version, items) = list_all(channel).await;
    let count = items.len();
    let codes: BTreeSet<String> = items.into_iter().map(|i| i.implementation_code).collect();
    assert_eq!(codes.len(), count, "ListItems returned an item twice");
    (version, codes)
}

/// The versions a node holds, newest first (`ListVersions`).
pub async fn versions(channel: Channel) -> Vec<pb::VersionInfo> {
    client(channel)
        .list_versions(pb::ListVersionsRequest {})
        .await
        .unwrap_or_else(|s| panic!("ListVersions failed: {s:?}"))
        .into_inner()
        .versions
}

/// Issues at the county, through the real `Entrustment.IssueLetter` RPC, `township`'s letter of
/// entrustment for one class of items (`codes` empty for the whole class), and returns it.
pub async fn entrust(
    county: tonic::transport::Channel,
    township: &str,
    class: tongban_proto::v1::Category,
    codes: &[&str],
) -> tongban_proto::v1::EntrustmentLetter {
    tongban_proto::v1::entrustment_client::EntrustmentClient::new(county)
        .issue_letter(tongban_proto::v1::EntrustmentLetter {
            township: township.to_owned(),
            letter_number: format!("五政服委〔2026〕{}号", &township[township.len() - 3..]),
            letter_date: "2026-01-15".to_owned(),
            item_class: class as i32,
            item_codes: codes.iter().map(|c| (*c).to_owned()).collect(),
            revoked: false,
            seal: 0,
        })
        .await
        .unwrap_or_else(|s| panic!("letter of entrustment to {township}: {s:?}"))
        .into_inner()
}
