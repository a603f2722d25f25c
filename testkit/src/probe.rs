//! Case-shaped load probes: realistic intake records (Chinese names, resident id numbers,
//! phone numbers, addresses in Wuhua's towns, catalogue items and their materials), about 1 KB
//! each, used by `tongban bench` and the tests to exercise replication before real case events
//! exist. Deterministic for a given seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tongban_domains::event::NewEvent;
use tongban_domains::ids::NodeId;
use tongban_proto::v1::{self as pb, RouteClass, event_body::Body};

use crate::wuhua;

const SURNAMES: &[&str] = &[
    "张", "李", "王", "陈", "刘", "黄", "钟", "曾", "古", "温", "魏", "李", "邱", "罗", "叶", "廖", "谢", "缪", "朱",
    "彭",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
    "秀兰", "霞", "平", "刚", "桂英", "志强", "建华", "国平", "少芬", "文华", "海燕", "振兴",
];
const HAMLETS: &[&str] = &[
    "上屋", "下围", "新村", "老屋", "岗背", "塘尾", "坑口", "石角", "排上", "田心",
];
const ITEMS: &[(&str, &str)] = &[
    ("000201001000", "农村村民住宅用地审批"),
    ("000105023000", "个体工商户设立登记"),
    ("000114003000", "城乡居民基本养老保险参保登记"),
    ("000119007000", "特困人员救助供养审批"),
    ("000121002000", "残疾人两项补贴申请"),
    ("000211008000", "乡村建设规划许可证核发"),
    ("000132015000", "计划生育家庭奖励扶助金发放"),
    ("000117004000", "医疗救助申请"),
];
const MATERIALS: &[&str] = &[
    "申请人居民身份证复印件",
    "户口簿复印件",
    "申请表（原件）",
    "村民委员会意见书",
    "宅基地使用权属证明材料",
    "家庭收入情况声明",
    "近期一寸免冠照片",
    "银行账户信息",
    "现场勘查记录",
    "相关证明材料",
];

/// Generates probe events for one node.
pub struct ProbeGenerator {
    rng: StdRng,
    author: NodeId,
    counter: u64,
}

impl ProbeGenerator {
    pub fn new(author: NodeId, seed: u64) -> Self {
        ProbeGenerator {
            rng: StdRng::seed_from_u64(seed),
            author,
            counter: 0,
        }
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.rng.random_range(0..list.len())]
    }

    fn id_number(&mut self) -> String {
        let year = self.rng.random_range(1940..2005);
        let month = self.rng.random_range(1..=12);
        let day = self.rng.random_range(1..=28);
        let seq = self.rng.random_range(100..999);
        let body = format!("441424{year}{month:02}{day:02}{seq}");
        // GB 11643 check digit.
        const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        const CHECK: &[u8; 11] = b"10X98765432";
        let sum: u32 = body.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
        format!("{body}{}", CHECK[(sum % 11) as usize] as char)
    }

    /// The next probe record.
    pub fn record(&mut self) -> pb::ProbeRecord {
        self.counter += 1;
        let township = &wuhua::TOWNSHIPS[self.rng.random_range(0..wuhua::TOWNSHIPS.len())];
        let (item_code, item_name) = ITEMS[self.rng.random_range(0..ITEMS.len())];
        let name = format!("{}{}", self.pick(SURNAMES), self.pick(GIVEN));
        let n_materials = self.rng.random_range(6..11);
        let materials = (0..n_materials).map(|_| self.pick(MATERIALS).to_owned()).collect();
        let month = self.rng.random_range(1..=12);
        let day = self.rng.random_range(1..=28);
        let hamlet = self.pick(HAMLETS);
        let phone = format!(
            "13{}{:08}",
            self.rng.random_range(0..10),
            self.rng.random_range(0..100_000_000u32)
        );
        let id_number = self.id_number();
        let agent = format!("{}{}", self.pick(SURNAMES), self.pick(GIVEN));
        pb::ProbeRecord {
            case_id: format!("{}-2026{month:02}{day:02}-{:06}", self.author, self.counter),
            item_code: item_code.to_owned(),
            item_name: item_name.to_owned(),
            applicant_name: name,
            applicant_id_number: id_number,
            applicant_phone: phone,
            applicant_address: format!(
                "广东省梅州市五华县{}{}村{}{}组{}号",
                township.name,
                hamlet,
                hamlet,
                self.rng.random_range(1..12),
                self.rng.random_range(1..80)
            ),
            submitted_on: format!("2026-{month:02}-{day:02}"),
            materials,
            remarks: format!(
                "申请人于村党群服务中心代办窗口提交申请，经办人{agent}已核对身份证件原件，材料齐全，\
                 按规定转{}党群服务中心综合窗口受理；申请人选择邮寄送达结果，联系电话已登记。\
                 纸质材料共{}页已扫描上传，原件随物料箱转交，村委会已出具情况属实的证明意见。\
                 承诺办结时限为{}个工作日，办理进度和结果将以短信告知申请人。",
                township.name,
                self.rng.random_range(8..40),
                self.rng.random_range(3..21)
            ),
        }
    }

    /// The next probe as an event to author at this generator's node, travelling to `route_key`
    /// (the author itself, or a node below it).
    pub fn event(&mut self, route_key: &NodeId) -> NewEvent {
        let record = self.record();
        NewEvent {
            principal: format!("node:{}", self.author),
            subject: format!("probe:{}", record.case_id),
            route_key: route_key.clone(),
            route_class: RouteClass::Path,
            body: Body::Probe(record),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn probes_are_about_a_kilobyte_and_deterministic() {
        let village = NodeId::new("441424100201").unwrap();
        let mut a = ProbeGenerator::new(village.clone(), 7);
        let mut b = ProbeGenerator::new(village, 7);
        let sizes: Vec<usize> = (0..200)
            .map(|i| {
                tongban_domains::event::seal(&a.author.clone(), i + 1, 1, &a.event(&a.author.clone())).encoded_len()
            })
            .collect();
        let mean = sizes.iter().sum::<usize>() / sizes.len();
        assert!((900..=1200).contains(&mean), "mean probe event size {mean} bytes");
        let mut a2 = ProbeGenerator::new(NodeId::new("441424100201").unwrap(), 7);
        assert_eq!(a2.record(), b.record());
    }
}
