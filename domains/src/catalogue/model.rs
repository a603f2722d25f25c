//! Domain types of the matter catalogue (事项清单): items, materials and their enumerations,
//! the rules an item must satisfy, the derived seal, conversion to and from the `tongban.v1`
//! wire types, and the content hashes that let a replica prove it holds exactly the catalogue
//! the county published.
//!
//! These are plain Rust types, not prost types: enums are real enums (serialised in
//! `snake_case`), and an [`Item`] is only built from the wire form through
//! [`TryFrom<pb::CatalogueItem>`], which refuses unknown or unspecified enum values.

use std::fmt;
use std::str::FromStr;

use prost::Message;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tongban_proto::v1 as pb;

/// Why a value cannot become (part of) an [`Item`]. Every variant names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// An enum field holds a number the contract does not define.
    #[error("field {field}: unknown value {value}")]
    UnknownEnum { field: &'static str, value: i32 },
    /// An enum field holds its `UNSPECIFIED` (zero) value.
    #[error("field {field}: value is unspecified")]
    Unspecified { field: &'static str },
    /// A field holds a value the catalogue rules refuse.
    #[error("field {field}: {message}")]
    Invalid { field: &'static str, message: String },
}

impl ModelError {
    /// The name of the offending field (`materials.form` for a material's form).
    pub fn field(&self) -> &'static str {
        match self {
            ModelError::UnknownEnum { field, .. }
            | ModelError::Unspecified { field }
            | ModelError::Invalid { field, .. } => field,
        }
    }

    fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ModelError::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// A text term that is not one of an enumeration's accepted names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {term:?} (expected one of: {expected})")]
pub struct UnknownTerm {
    pub kind: &'static str,
    pub term: String,
    pub expected: String,
}

/// Generates a catalogue enum: variants, serde names, Chinese labels, accepted aliases,
/// conversion to and from the prost enum.
macro_rules! catalogue_enum {
    (
        $(#[$meta:meta])*
        $name:ident => $pb:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $en:literal, $zh:literal $(, [$($alias:literal),*])? ; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The English `snake_case` name (the serde and CSV name).
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $en,)+ }
            }

            /// The simplified-Chinese term used in Guangdong catalogues.
            pub const fn label_zh(self) -> &'static str {
                match self { $($name::$variant => $zh,)+ }
            }

            /// Reads a spreadsheet term: the English name (any case), the Chinese term, or a
            /// documented alias. Surrounding whitespace is ignored.
            pub fn parse_term(term: &str) -> Option<Self> {
                let t = term.trim();
                let lower = t.to_ascii_lowercase();
                $(
                    if lower == $en || t == $zh $($(|| lower == $alias || t == $alias)*)? {
                        return Some($name::$variant);
                    }
                )+
                None
            }

            fn expected_terms() -> String {
                let names: Vec<String> = Self::ALL
                    .iter()
                    .map(|v| format!("{}/{}", v.as_str(), v.label_zh()))
                    .collect();
                names.join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownTerm;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse_term(s).ok_or_else(|| UnknownTerm {
                    kind: $kind,
                    term: s.to_owned(),
                    expected: Self::expected_terms(),
                })
            }
        }

        impl From<$name> for pb::$pb {
            fn from(v: $name) -> Self {
                match v { $($name::$variant => pb::$pb::$variant,)+ }
            }
        }

        impl $name {
            /// Decodes the `i32` a prost message carries for this enum; `field` names the field
            /// in the error.
            pub fn from_wire(value: i32, field: &'static str) -> Result<Self, ModelError> {
                match pb::$pb::try_from(value) {
                    $(Ok(pb::$pb::$variant) => Ok($name::$variant),)+
                    Ok(_) => Err(ModelError::Unspecified { field }),
                    Err(_) => Err(ModelError::UnknownEnum { field, value }),
                }
            }

            /// The `i32` a prost message carries for this value.
            pub fn to_wire(self) -> i32 {
                pb::$pb::from(self) as i32
            }
        }
    };
}

catalogue_enum! {
    /// The legal nature of an item (事项类型). Numbers on the wire follow the national data model.
    ItemType => ItemType, "item type" {
        Licence = "licence", "行政许可", ["license", "1"];
        Penalty = "penalty", "行政处罚", ["2"];
        Enforcement = "enforcement", "行政强制", ["3"];
        Levy = "levy", "行政征收", ["4"];
        Benefit = "benefit", "行政给付", ["5"];
        Inspection = "inspection", "行政检查", ["6"];
        Confirmation = "confirmation", "行政确认", ["7"];
        Reward = "reward", "行政奖励", ["8"];
        Adjudication = "adjudication", "行政裁决", ["9"];
        OtherPower = "other_power", "其他行政权力", ["10"];
        Filing = "filing", "备案", ["行政备案", "11"];
        PublicService = "public_service", "公共服务", ["20"];
    }
}

catalogue_enum! {
    /// Which of the two township lists an item belongs to.
    Category => Category, "category" {
        GovernmentService = "government_service", "政务服务", ["政务服务事项"];
        PublicService = "public_service", "公共服务", ["公共服务事项"];
    }
}

catalogue_enum! {
    /// How a township comes to handle an item.
    DelegationMode => DelegationMode, "delegation mode" {
        /// 授权: the township decides in its own name.
        Authorised = "authorised", "授权", ["authorized"];
        /// 委托: the county keeps the authority; the township acts in the county's name.
        Entrusted = "entrusted", "委托";
        /// Not delegated: the county decides; a township front desk may only accept.
        NotDelegated = "not_delegated", "不下放", ["未下放", "none"];
    }
}

catalogue_enum! {
    /// The lowest tier that exercises the item.
    ItemLevel => ItemLevel, "level" {
        County = "county", "县级", ["县"];
        Township = "township", "镇级", ["镇", "乡镇", "乡镇级"];
        /// Village-level public services, shown at every village service point.
        Village = "village", "村级", ["村", "村（社区）级"];
    }
}

catalogue_enum! {
    /// The kind of window at the township centre that handles the item.
    WindowType => WindowType, "window type" {
        Consultation = "consultation", "咨询导办";
        Comprehensive = "comprehensive", "综合服务";
        Specialised = "specialised", "专门服务", ["specialized"];
    }
}

catalogue_enum! {
    /// The seal a result is stamped with: one class of item, one seal. See [`SealType::derive`].
    SealType => SealType, "seal type" {
        /// XX镇人民政府审批服务专用章 (authorised items).
        TownshipApproval = "township_approval", "审批服务专用章";
        /// 行政审批委托专用章 (entrusted government-service items).
        EntrustedApproval = "entrusted_approval", "行政审批委托专用章";
        /// 业务专用章 (entrusted public-service items).
        Business = "business", "业务专用章";
        /// The county department's own seal (items not delegated).
        County = "county", "县直部门印章";
    }
}

catalogue_enum! {
    /// Whether a material must be the original or may be a copy.
    MaterialForm => MaterialForm, "material form" {
        Original = "original", "原件";
        Copy = "copy", "复印件", ["副本", "复印"];
    }
}

impl SealType {
    /// The seal that follows from how an item is delegated and which list it is on:
    /// authorised → township approval seal; entrusted government-service item → entrusted
    /// approval seal; entrusted public-service item → business seal; not delegated → county.
    pub const fn derive(delegation: DelegationMode, category: Category) -> SealType {
        match (delegation, category) {
            (DelegationMode::Authorised, _) => SealType::TownshipApproval,
            (DelegationMode::Entrusted, Category::GovernmentService) => SealType::EntrustedApproval,
            (DelegationMode::Entrusted, Category::PublicService) => SealType::Business,
            (DelegationMode::NotDelegated, _) => SealType::County,
        }
    }
}

impl ItemType {
    /// True when a citizen or organisation applies for an item of this kind (依申请), so a
    /// service window may open a case for it; false for the powers the administration exercises
    /// on its own initiative (依职权): 行政处罚 (a penalty is imposed after an investigation),
    /// 行政强制 (enforcement measures), 行政检查 (inspections the department schedules) and
    /// 行政征收 (levies the department assesses and collects). Guangdong's catalogue practice
    /// calls the rest the application kinds: 行政许可, 行政给付, 行政确认, 行政奖励, 行政裁决,
    /// 其他行政权力 (其他行政权力 holds both, but the ones in a township list are applied for),
    /// plus 备案 and 公共服务. Such items stay in the list so a township can see what it was
    /// delegated; they are refused at intake.
    pub const fn accepts_applications(self) -> bool {
        !matches!(
            self,
            ItemType::Penalty | ItemType::Enforcement | ItemType::Inspection | ItemType::Levy
        )
    }
}

impl DelegationMode {
    /// True for authorised and entrusted items.
    pub const fn is_delegated(self) -> bool {
        !matches!(self, DelegationMode::NotDelegated)
    }
}

/// One material an applicant must bring.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Material {
    pub name: String,
    pub required: bool,
    pub form: MaterialForm,
    /// Number of pages; 0 when unknown.
    pub pages: u32,
}

/// One item of the catalogue, keyed by [`Item::key`] (the implementation code).
///
/// Which townships "may handle" an item is given by `all_townships` / `townships` whatever the
/// delegation mode: for an authorised or entrusted item they are the townships it is delegated
/// to; for a not-delegated item they are the townships whose front desk accepts applications
/// and forwards them to the county (前台综合受理). An empty list with `all_townships == false`
/// means the item is handled at the county hall only. When `all_townships` is true,
/// `townships` is empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Item {
    /// Basic item code (基本编码), 1–12 characters `[0-9A-Za-z]`.
    pub item_code: String,
    /// Implementation code (实施编码), the key: non-empty ASCII without whitespace.
    pub implementation_code: String,
    pub name: String,
    pub item_type: ItemType,
    pub category: Category,
    /// Policy domain, e.g. "自然资源和规划".
    pub domain: String,
    /// The county department that implements (or entrusts) the item.
    pub department: String,
    pub delegation: DelegationMode,
    /// Delegation batch: 1 or 2 when delegated, 0 when not.
    pub batch: u32,
    pub all_townships: bool,
    /// 9-digit township codes, without duplicates; empty when `all_townships`.
    pub townships: Vec<String>,
    /// Whether village service points may take applications and forward them.
    pub village_intake: bool,
    pub level: ItemLevel,
    pub window: WindowType,
    /// Statutory limit in working days.
    pub statutory_days: u32,
    /// Promised limit in working days, ≤ `statutory_days`; 0 for immediate items.
    pub promised_days: u32,
    /// Immediate item (即办件): concluded at the window in one step.
    pub immediate: bool,
    pub materials: Vec<Material>,
    /// Whether the paper originals must travel to the county in a material box.
    pub originals_to_county: bool,
    /// Always `SealType::derive(delegation, category)`; see [`Item::validate`].
    pub seal: SealType,
}

/// Checks a basic item code: 1–12 ASCII letters or digits.
pub fn check_item_code(code: &str) -> Result<(), String> {
    if code.is_empty() || code.chars().count() > 12 {
        return Err(format!(
            "{code:?} must be 1 to 12 characters (found {})",
            code.chars().count()
        ));
    }
    if !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("{code:?} may contain only letters A-Z, a-z and digits 0-9"));
    }
    Ok(())
}

/// Checks an implementation code: non-empty, ASCII, no whitespace or control characters.
pub fn check_implementation_code(code: &str) -> Result<(), String> {
    if code.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if !code.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("{code:?} must be ASCII without spaces or control characters"));
    }
    Ok(())
}

/// Checks a township code: exactly 9 ASCII digits.
pub fn check_township_code(code: &str) -> Result<(), String> {
    if code.len() == 9 && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("{code:?} is not a 9-digit township code"))
    }
}

/// Checks a township list: every code well formed, none repeated.
pub fn check_townships(codes: &[String]) -> Result<(), String> {
    let mut problems = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        if let Err(e) = check_township_code(code) {
            problems.push(e);
        } else if codes[..i].contains(code) {
            problems.push(format!("{code} is listed twice"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

impl Item {
    /// The catalogue key: the implementation code.
    pub fn key(&self) -> &str {
        &self.implementation_code
    }

    /// True for authorised and entrusted items.
    pub fn is_delegated(&self) -> bool {
        self.delegation.is_delegated()
    }

    /// True when `township` (9-digit code) may handle the item: it is on the item's township
    /// list (or the item is for all townships). For delegated items that means the township
    /// accepts and decides (authorised) or accepts and issues for the county (entrusted); for
    /// not-delegated items it means the township front desk accepts and forwards to the county.
    /// Use [`Item::delegated_to`] for the delegated list alone.
    pub fn available_to_township(&self, township: &str) -> bool {
        self.all_townships || self.townships.iter().any(|t| t == township)
    }

    /// True when the item is authorised or entrusted to `township` — the township's public list
    /// of delegated items.
    pub fn delegated_to(&self, township: &str) -> bool {
        self.is_delegated() && self.available_to_township(township)
    }

    /// True when the village service points under `township` show the item: it is available
    /// to the township and takes village intake, or it is a village-level public service.
    pub fn visible_to_village(&self, township: &str) -> bool {
        (self.available_to_township(township) && self.village_intake) || self.level == ItemLevel::Village
    }

    /// True when a case may be opened for the item at a window: its kind is applied for
    /// (依申请). See [`ItemType::accepts_applications`].
    pub fn accepts_applications(&self) -> bool {
        self.item_type.accepts_applications()
    }

    /// The seal this item's results are stamped with, derived from delegation and category.
    pub fn derived_seal(&self) -> SealType {
        SealType::derive(self.delegation, self.category)
    }

    /// SHA-256 of the prost encoding of the item's wire form ([`pb::CatalogueItem`]).
    /// Prost encodes fields in tag order and omits defaults, so equal items hash equally.
    pub fn content_hash(&self) -> [u8; 32] {
        let wire = pb::CatalogueItem::from(self);
        Sha256::digest(wire.encode_to_vec()).into()
    }

    /// Every rule the item breaks, each naming its field. Empty when the item is valid.
    ///
    /// Rules: codes well formed (see [`check_item_code`], [`check_implementation_code`]); name,
    /// domain and department non-empty; `promised_days ≤ statutory_days`; immediate items have
    /// `promised_days == 0` and other items `promised_days ≥ 1`; `batch` is 1 or 2 when
    /// delegated and 0 when not; townships are distinct 9-digit codes, empty when
    /// `all_townships`; a delegated item names at least one township (or all); materials have
    /// non-empty names without `|` or `;` (the CSV separators); `seal` equals [`SealType::derive`].
    pub fn validate(&self) -> Vec<ModelError> {
        let mut out = Vec::new();
        let mut bad = |field: &'static str, message: String| {
            out.push(ModelError::invalid(field, message));
        };
        if let Err(e) = check_item_code(&self.item_code) {
            bad("item_code", e);
        }
        if let Err(e) = check_implementation_code(&self.implementation_code) {
            bad("implementation_code", e);
        }
        for (field, value) in [
            ("name", &self.name),
            ("domain", &self.domain),
            ("department", &self.department),
        ] {
            if value.trim().is_empty() {
                bad(field, "must not be empty".to_owned());
            }
        }
        if self.promised_days > self.statutory_days {
            bad(
                "promised_days",
                format!("{} exceeds statutory_days {}", self.promised_days, self.statutory_days),
            );
        }
        if self.immediate && self.promised_days != 0 {
            bad(
                "promised_days",
                format!("{} but an immediate item (即办件) must have 0", self.promised_days),
            );
        }
        if !self.immediate && self.promised_days == 0 {
            bad(
                "promised_days",
                "0 is only allowed for immediate items (即办件)".to_owned(),
            );
        }
        match (self.is_delegated(), self.batch) {
            (true, 1 | 2) | (false, 0) => {}
            (true, b) => bad("batch", format!("{b} but a delegated item must be in batch 1 or 2")),
            (false, b) => bad(
                "batch",
                format!("{b} but an item that is not delegated has no batch (0 or empty)"),
            ),
        }
        if let Err(e) = check_townships(&self.townships) {
            bad("townships", e);
        }
        if self.all_townships && !self.townships.is_empty() {
            bad(
                "townships",
                "lists townships although the item is for all townships".to_owned(),
            );
        }
        if self.is_delegated() && !self.all_townships && self.townships.is_empty() {
            bad(
                "townships",
                "a delegated item must name its townships or \"all\"".to_owned(),
            );
        }
        for (i, m) in self.materials.iter().enumerate() {
            if m.name.trim().is_empty() {
                bad("materials", format!("entry {}: the name is empty", i + 1));
            } else if m.name.contains(['|', ';', '；']) {
                bad(
                    "materials",
                    format!(
                        "entry {} ({:?}): a name may not contain | or ; (the CSV separators)",
                        i + 1,
                        m.name
                    ),
                );
            }
        }
        let derived = self.derived_seal();
        if self.seal != derived {
            bad(
                "seal",
                format!(
                    "{} but {} {} items take {derived}",
                    self.seal, self.delegation, self.category
                ),
            );
        }
        out
    }
}

impl From<&Material> for pb::Material {
    fn from(m: &Material) -> Self {
        pb::Material {
            name: m.name.clone(),
            required: m.required,
            form: m.form.to_wire(),
            pages: m.pages,
        }
    }
}

impl TryFrom<pb::Material> for Material {
    type Error = ModelError;
    fn try_from(m: pb::Material) -> Result<Self, Self::Error> {
        Ok(Material {
            form: MaterialForm::from_wire(m.form, "materials.form")?,
            name: m.name,
            required: m.required,
            pages: m.pages,
        })
    }
}

impl From<&Item> for pb::CatalogueItem {
    fn from(i: &Item) -> Self {
        pb::CatalogueItem {
            item_code: i.item_code.clone(),
            implementation_code: i.implementation_code.clone(),
            name: i.name.clone(),
            item_type: i.item_type.to_wire(),
            category: i.category.to_wire(),
            domain: i.domain.clone(),
            department: i.department.clone(),
            delegation: i.delegation.to_wire(),
            batch: i.batch,
            all_townships: i.all_townships,
            townships: i.townships.clone(),
            village_intake: i.village_intake,
            level: i.level.to_wire(),
            window: i.window.to_wire(),
            statutory_days: i.statutory_days,
            promised_days: i.promised_days,
            immediate: i.immediate,
            materials: i.materials.iter().map(pb::Material::from).collect(),
            originals_to_county: i.originals_to_county,
            seal: i.seal.to_wire(),
        }
    }
}

/// Decodes the wire form. Enum fields must hold defined, specified values. The seal is derived;
/// a wire seal of `UNSPECIFIED` is accepted (and filled in), any other value must equal the
/// derived seal. The catalogue rules are not re-checked here: call [`Item::validate`].
impl TryFrom<pb::CatalogueItem> for Item {
    type Error = ModelError;
    fn try_from(w: pb::CatalogueItem) -> Result<Self, Self::Error> {
        let item_type = ItemType::from_wire(w.item_type, "item_type")?;
        let category = Category::from_wire(w.category, "category")?;
        let delegation = DelegationMode::from_wire(w.delegation, "delegation")?;
        let level = ItemLevel::from_wire(w.level, "level")?;
        let window = WindowType::from_wire(w.window, "window")?;
        let derived = SealType::derive(delegation, category);
        if w.seal != pb::SealType::Unspecified as i32 {
            let seal = SealType::from_wire(w.seal, "seal")?;
            if seal != derived {
                return Err(ModelError::invalid(
                    "seal",
                    format!("{seal} but {delegation} {category} items take {derived}"),
                ));
            }
        }
        let materials = w
            .materials
            .into_iter()
            .map(Material::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Item {
            item_code: w.item_code,
            implementation_code: w.implementation_code,
            name: w.name,
            item_type,
            category,
            domain: w.domain,
            department: w.department,
            delegation,
            batch: w.batch,
            all_townships: w.all_townships,
            townships: w.townships,
            village_intake: w.village_intake,
            level,
            window,
            statutory_days: w.statutory_days,
            promised_days: w.promised_days,
            immediate: w.immediate,
            materials,
            originals_to_county: w.originals_to_county,
            seal: derived,
        })
    }
}

/// What a code a clerk typed names among the catalogue's rows. A basic item code (基本编码) may
/// be shared by several rows (variants such as 临时救助（急难型） and 临时救助（支出型）), which only
/// their implementation codes (实施编码) tell apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariantChoice<'a> {
    /// Exactly one row: the implementation code itself, or a basic code with one row the caller
    /// may use.
    One(&'a Item),
    /// A basic code whose rows the caller may use are several: the caller must name one by its
    /// implementation code. In implementation-code order.
    Several(Vec<&'a Item>),
    /// No row the caller may use.
    None,
}

/// Chooses the row `code` names among `rows` (the rows whose implementation code or basic code is
/// `code`): an implementation code names its row whatever `usable` says (the caller then says why
/// it cannot be used); a basic code names the rows for which `usable` holds, which must be one.
pub fn choose_variant<'a>(code: &str, rows: &'a [Item], usable: impl Fn(&Item) -> bool) -> VariantChoice<'a> {
    if let Some(exact) = rows.iter().find(|i| i.implementation_code == code) {
        return VariantChoice::One(exact);
    }
    let mut usable_rows: Vec<&Item> = rows.iter().filter(|i| i.item_code == code && usable(i)).collect();
    usable_rows.sort_by(|a, b| a.implementation_code.cmp(&b.implementation_code));
    match usable_rows.len() {
        0 => VariantChoice::None,
        1 => VariantChoice::One(usable_rows[0]),
        _ => VariantChoice::Several(usable_rows),
    }
}

/// How many variants a refusal names before it says how many more there are.
pub const VARIANTS_SHOWN: usize = 5;

/// The refusal for a basic code shared by several variants: what was refused, the first
/// [`VARIANTS_SHOWN`] variants (name and implementation code) and, after 下一步, what to do.
pub fn ambiguous_code_message(code: &str, variants: &[&Item]) -> String {
    let shown: Vec<String> = variants
        .iter()
        .take(VARIANTS_SHOWN)
        .map(|i| format!("{}（实施编码 {}）", i.name, i.implementation_code))
        .collect();
    let more = match variants.len().saturating_sub(VARIANTS_SHOWN) {
        0 => String::new(),
        n => format!("等，另有 {n} 个未列出"),
    };
    format!(
        "基本编码 {code} 对应 {} 个实施事项，不能确定是哪一个：{}{more}；\
         下一步：改用实施编码（tongban catalogue list --query {code} 列出全部）",
        variants.len(),
        shown.join("、")
    )
}

/// Content hash of a whole catalogue from `(key, item hash)` pairs, independent of their order.
///
/// Layout: the pairs are sorted by key bytes (then by item hash, so even repeated keys hash the
/// same in any order); the digest is SHA-256 over the concatenation, for each pair, of the key's
/// UTF-8 bytes, one `0x00` byte, and the 32-byte item hash:
///
/// ```text
/// SHA-256( key_1 ‖ 0x00 ‖ hash_1 ‖ key_2 ‖ 0x00 ‖ hash_2 ‖ … )
/// ```
///
/// Keys are implementation codes, which are ASCII without control characters, so `0x00` cannot
/// occur inside a key and the encoding is unambiguous. The empty catalogue hashes to SHA-256 of
/// the empty string (`e3b0c442…b855`).
pub fn catalogue_hash<'a>(item_hashes: impl IntoIterator<Item = (&'a str, [u8; 32])>) -> [u8; 32] {
    let mut pairs: Vec<(&str, [u8; 32])> = item_hashes.into_iter().collect();
    pairs.sort_unstable();
    let mut hasher = Sha256::new();
    for (key, hash) in pairs {
        hasher.update(key.as_bytes());
        hasher.update([0u8]);
        hasher.update(hash);
    }
    hasher.finalize().into()
}

/// [`catalogue_hash`] of a set of items: each item contributes its key and [`Item::content_hash`].
pub fn catalogue_hash_of<'a>(items: impl IntoIterator<Item = &'a Item>) -> [u8; 32] {
    let hashed: Vec<(&str, [u8; 32])> = items.into_iter().map(|i| (i.key(), i.content_hash())).collect();
    catalogue_hash(hashed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;

    /// A valid entrusted government-service item for tests.
    pub(crate) fn sample_item(code: &str) -> Item {
        Item {
            item_code: "000201001000".to_owned(),
            implementation_code: code.to_owned(),
            name: "个体工商户设立登记".to_owned(),
            item_type: ItemType::Confirmation,
            category: Category::GovernmentService,
            domain: "市场监管".to_owned(),
            department: "五华县市场监督管理局".to_owned(),
            delegation: DelegationMode::Entrusted,
            batch: 1,
            all_townships: false,
            townships: vec!["441424100".to_owned(), "441424104".to_owned()],
            village_intake: true,
            level: ItemLevel::Township,
            window: WindowType::Specialised,
            statutory_days: 15,
            promised_days: 3,
            immediate: false,
            materials: vec![
                Material {
                    name: "个体工商户登记申请书".to_owned(),
                    required: true,
                    form: MaterialForm::Original,
                    pages: 2,
                },
                Material {
                    name: "经营者身份证明".to_owned(),
                    required: true,
                    form: MaterialForm::Copy,
                    pages: 1,
                },
            ],
            originals_to_county: true,
            seal: SealType::EntrustedApproval,
        }
    }

    #[test]
    fn seal_is_derived_for_all_four_cases() {
        use Category::*;
        use DelegationMode::*;
        assert_eq!(
            SealType::derive(Authorised, GovernmentService),
            SealType::TownshipApproval
        );
        assert_eq!(SealType::derive(Authorised, PublicService), SealType::TownshipApproval);
        assert_eq!(
            SealType::derive(Entrusted, GovernmentService),
            SealType::EntrustedApproval
        );
        assert_eq!(SealType::derive(Entrusted, PublicService), SealType::Business);
        assert_eq!(SealType::derive(NotDelegated, GovernmentService), SealType::County);
        assert_eq!(SealType::derive(NotDelegated, PublicService), SealType::County);
    }

    #[test]
    fn proto_round_trip_preserves_the_item() {
        let item = sample_item("A-1");
        let wire = pb::CatalogueItem::from(&item);
        assert_eq!(wire.seal, pb::SealType::EntrustedApproval as i32);
        assert_eq!(wire.item_type, 7);
        let back = Item::try_from(wire.clone()).unwrap();
        assert_eq!(back, item);
        // Encoded and decoded through bytes as a replica would.
        let decoded = pb::CatalogueItem::decode(wire.encode_to_vec().as_slice()).unwrap();
        assert_eq!(Item::try_from(decoded).unwrap(), item);
    }

    #[test]
    fn proto_decoding_names_the_bad_field() {
        let mut wire = pb::CatalogueItem::from(&sample_item("A-1"));
        wire.delegation = 0;
        assert_eq!(
            Item::try_from(wire.clone()).unwrap_err(),
            ModelError::Unspecified { field: "delegation" }
        );
        wire.delegation = 99;
        assert_eq!(Item::try_from(wire).unwrap_err().field(), "delegation");

        let mut wire = pb::CatalogueItem::from(&sample_item("A-1"));
        wire.seal = pb::SealType::County as i32;
        assert_eq!(Item::try_from(wire.clone()).unwrap_err().field(), "seal");
        wire.seal = 0;
        assert_eq!(Item::try_from(wire).unwrap().seal, SealType::EntrustedApproval);

        let mut wire = pb::CatalogueItem::from(&sample_item("A-1"));
        wire.materials[1].form = 7;
        assert_eq!(Item::try_from(wire).unwrap_err().field(), "materials.form");
    }

    #[test]
    fn townships_and_villages_see_what_the_lists_say() {
        let mut item = sample_item("A-1");
        assert!(item.available_to_township("441424100"));
        assert!(item.delegated_to("441424104"));
        assert!(!item.available_to_township("441424101"));
        assert!(item.visible_to_village("441424100"));
        assert!(!item.visible_to_village("441424101"));
        item.village_intake = false;
        assert!(!item.visible_to_village("441424100"));
        item.level = ItemLevel::Village;
        assert!(item.visible_to_village("441424101"));

        let mut county_only = sample_item("B-1");
        county_only.delegation = DelegationMode::NotDelegated;
        county_only.batch = 0;
        county_only.townships.clear();
        county_only.seal = SealType::County;
        county_only.level = ItemLevel::County;
        assert!(county_only.validate().is_empty());
        assert!(!county_only.available_to_township("441424100"));
        // A front desk that accepts a not-delegated item may handle it, but it is not delegated.
        county_only.all_townships = true;
        assert!(county_only.available_to_township("441424100"));
        assert!(!county_only.delegated_to("441424100"));
    }

    #[test]
    fn validation_names_each_broken_rule() {
        assert!(sample_item("A-1").validate().is_empty());
        let mut item = sample_item("A 1");
        item.item_code = "0002-01".to_owned();
        item.promised_days = 30;
        item.batch = 0;
        item.townships.push("441424100".to_owned());
        item.seal = SealType::Business;
        let fields: Vec<&str> = item.validate().iter().map(ModelError::field).collect();
        assert_eq!(
            fields,
            [
                "item_code",
                "implementation_code",
                "promised_days",
                "batch",
                "townships",
                "seal"
            ]
        );
        let mut immediate = sample_item("A-2");
        immediate.immediate = true;
        assert_eq!(immediate.validate()[0].field(), "promised_days");
    }

    #[test]
    fn enum_terms_accept_english_and_chinese() {
        assert_eq!(ItemType::parse_term("licence"), Some(ItemType::Licence));
        assert_eq!(ItemType::parse_term("行政许可"), Some(ItemType::Licence));
        assert_eq!(ItemType::parse_term("其他行政权力"), Some(ItemType::OtherPower));
        assert_eq!(ItemType::parse_term(" Other_Power "), Some(ItemType::OtherPower));
        assert_eq!(ItemType::parse_term("20"), Some(ItemType::PublicService));
        assert_eq!(DelegationMode::parse_term("委托"), Some(DelegationMode::Entrusted));
        assert_eq!("不下放".parse::<DelegationMode>(), Ok(DelegationMode::NotDelegated));
        assert_eq!(Category::parse_term("公共服务"), Some(Category::PublicService));
        assert!("delegated".parse::<DelegationMode>().is_err());
        for t in ItemType::ALL {
            assert_eq!(ItemType::parse_term(t.label_zh()), Some(*t));
            assert_eq!(t.as_str().parse::<ItemType>(), Ok(*t));
            assert_eq!(ItemType::from_wire(t.to_wire(), "item_type"), Ok(*t));
        }
        assert_eq!(
            serde_json::to_string(&DelegationMode::NotDelegated).unwrap(),
            "\"not_delegated\""
        );
    }

    #[test]
    fn catalogue_hash_is_order_independent_and_content_sensitive() {
        let a = sample_item("A-1");
        let b = sample_item("B-1");
        let c = sample_item("C-1");
        let h1 = catalogue_hash_of([&a, &b, &c]);
        let h2 = catalogue_hash_of([&c, &a, &b]);
        assert_eq!(h1, h2);
        let mut b2 = b.clone();
        b2.promised_days = 2;
        assert_ne!(a.content_hash(), sample_item("A-2").content_hash());
        assert_ne!(catalogue_hash_of([&a, &b2, &c]), h1);
        assert_ne!(catalogue_hash_of([&a, &b]), h1);
        assert_eq!(
            hex::encode(catalogue_hash([])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // The documented layout, computed by hand.
        let mut manual = Vec::new();
        for i in [&a, &b] {
            manual.extend_from_slice(i.key().as_bytes());
            manual.push(0);
            manual.extend_from_slice(&i.content_hash());
        }
        let expected: [u8; 32] = Sha256::digest(&manual).into();
        assert_eq!(catalogue_hash_of([&b, &a]), expected);
    }

    fn variant(implementation_code: &str, name: &str) -> Item {
        let mut item = sample_item(implementation_code);
        item.item_code = "050009005000".to_owned();
        item.name = name.to_owned();
        item
    }

    #[test]
    fn a_basic_code_names_one_variant_or_is_refused_with_the_list() {
        let rows = vec![
            variant("050009005000-1-01", "临时救助（急难型）"),
            variant("050009005000-1-02", "临时救助（支出型）"),
        ];
        // The implementation code names its row.
        match choose_variant("050009005000-1-02", &rows, |_| true) {
            VariantChoice::One(item) => assert_eq!(item.name, "临时救助（支出型）"),
            other => panic!("{other:?}"),
        }
        // Even a row the caller may not use: the caller says why.
        assert!(matches!(
            choose_variant("050009005000-1-02", &rows, |_| false),
            VariantChoice::One(_)
        ));
        // A basic code shared by two usable variants names neither.
        match choose_variant("050009005000", &rows, |_| true) {
            VariantChoice::Several(list) => {
                let codes: Vec<&str> = list.iter().map(|i| i.key()).collect();
                assert_eq!(codes, ["050009005000-1-01", "050009005000-1-02"]);
                let message = ambiguous_code_message("050009005000", &list);
                for part in [
                    "临时救助（急难型）（实施编码 050009005000-1-01）",
                    "临时救助（支出型）（实施编码 050009005000-1-02）",
                    "下一步：改用实施编码",
                ] {
                    assert!(message.contains(part), "{part} not in {message}");
                }
            }
            other => panic!("{other:?}"),
        }
        // One usable variant: the basic code still works.
        match choose_variant("050009005000", &rows, |i| i.key().ends_with("-02")) {
            VariantChoice::One(item) => assert_eq!(item.key(), "050009005000-1-02"),
            other => panic!("{other:?}"),
        }
        assert_eq!(choose_variant("050009005000", &rows, |_| false), VariantChoice::None);
        assert_eq!(choose_variant("999", &rows, |_| true), VariantChoice::None);
        // A long list names the first few and how many more.
        let many: Vec<Item> = (0..8)
            .map(|n| variant(&format!("X-{n}"), &format!("变体{n}")))
            .collect();
        let VariantChoice::Several(list) = choose_variant("050009005000", &many, |_| true) else {
            panic!("eight variants are several");
        };
        let message = ambiguous_code_message("050009005000", &list);
        assert!(
            message.contains("对应 8 个实施事项") && message.contains("另有 3 个未列出"),
            "{message}"
        );
        assert!(message.contains("变体4") && !message.contains("变体5"), "{message}");
    }

    #[test]
    fn penalties_inspections_enforcement_and_levies_are_not_applied_for() {
        let not_applied: Vec<ItemType> = ItemType::ALL
            .iter()
            .copied()
            .filter(|t| !t.accepts_applications())
            .collect();
        assert_eq!(
            not_applied,
            [
                ItemType::Penalty,
                ItemType::Enforcement,
                ItemType::Levy,
                ItemType::Inspection
            ]
        );
        let mut item = sample_item("A-1");
        assert!(item.accepts_applications());
        item.item_type = ItemType::Penalty;
        assert!(!item.accepts_applications());
        // The marking is derived, not stored: the wire form and the hash are unchanged by it.
        let mut licence = sample_item("A-1");
        licence.item_type = ItemType::Licence;
        assert_eq!(pb::CatalogueItem::from(&licence).item_type, 1);
    }

    #[test]
    fn the_sample_catalogue_marks_its_penalties_inspections_enforcement_and_levies() {
        let sample = crate::catalogue::parse_csv(include_bytes!("../../../data/wuhua-catalogue.csv")).unwrap();
        let not_applied: Vec<&Item> = sample.iter().filter(|i| !i.accepts_applications()).collect();
        assert_eq!(
            not_applied.len(),
            179,
            "118 penalties, 52 inspections, 7 enforcement, 2 levies"
        );
        let delegated = not_applied.iter().filter(|i| i.is_delegated()).count();
        assert_eq!(delegated, 60, "the delegated ones a clerk found");
        // And the basic codes shared by several rows, the variants only an implementation code
        // tells apart.
        let mut by_code: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for item in &sample {
            *by_code.entry(item.item_code.as_str()).or_default() += 1;
        }
        let shared: Vec<usize> = by_code.values().copied().filter(|n| *n > 1).collect();
        assert_eq!((shared.len(), shared.iter().sum::<usize>()), (206, 650));
    }
}
