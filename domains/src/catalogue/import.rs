//! Catalogue import and export: reads a catalogue from a CSV spreadsheet or a JSON array into
//! validated [`Item`]s, reporting every problem (not only the first) with the row and field a
//! person can find in their spreadsheet, and writes items back out in the same formats.
//!
//! The formats are documented in `data/README.md`. In short: one row (or JSON object) per item
//! with the columns of [`COLUMNS`]; enum cells take the English `snake_case` name or the
//! Chinese term; `seal` is never imported but derived from delegation and category.
//!
//! Row numbers: for CSV, the file line number on which the row starts (the header is line 1, so
//! the first item is row 2 — what a spreadsheet shows); for JSON, the array index + 1. Problems
//! with the file as a whole (size, encoding, syntax) carry row 0 and field `file`; problems with
//! the CSV header carry the header's line number and the column name.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use super::model::{
    Category, DelegationMode, Item, ItemLevel, ItemType, Material, MaterialForm, ModelError, SealType, UnknownTerm,
    WindowType, check_implementation_code, check_item_code, check_townships,
};

/// Largest file [`parse_csv`] and [`parse_json`] accept: 16 MiB.
pub const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;

/// The CSV columns, in the order [`to_csv`] writes them. Every one must be present in an
/// imported header (in any order); no other column is allowed.
pub const COLUMNS: [&str; 18] = [
    "item_code",
    "implementation_code",
    "name",
    "item_type",
    "category",
    "domain",
    "department",
    "delegation",
    "batch",
    "townships",
    "village_intake",
    "level",
    "window",
    "statutory_days",
    "promised_days",
    "immediate",
    "materials",
    "originals_to_county",
];

/// Chinese header names accepted in place of the English column names.
const COLUMN_ALIASES: [(&str, &str); 18] = [
    ("基本编码", "item_code"),
    ("实施编码", "implementation_code"),
    ("事项名称", "name"),
    ("事项类型", "item_type"),
    ("事项类别", "category"),
    ("业务领域", "domain"),
    ("实施部门", "department"),
    ("下放方式", "delegation"),
    ("下放批次", "batch"),
    ("适用镇", "townships"),
    ("村级代收", "village_intake"),
    ("行使层级", "level"),
    ("窗口类型", "window"),
    ("法定办结时限", "statutory_days"),
    ("承诺办结时限", "promised_days"),
    ("即办件", "immediate"),
    ("申请材料", "materials"),
    ("原件送县", "originals_to_county"),
];

/// Keys a JSON object may carry besides [`COLUMNS`]: `all_townships` (a boolean, the alternative
/// to `"townships": "all"`) and `seal` (checked against the derived seal, never taken from it).
const JSON_EXTRA_KEYS: [&str; 2] = ["all_townships", "seal"];

/// One problem found while importing: where, which field, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// CSV: the file line on which the row starts (header = 1). JSON: array index + 1.
    /// 0 for problems with the whole file.
    pub row: usize,
    /// The column or field name; `file` for problems with the whole file, `row` for a CSV row
    /// with the wrong number of cells.
    pub field: String,
    pub message: String,
}

impl RowError {
    fn new(row: usize, field: impl Into<String>, message: impl Into<String>) -> Self {
        RowError {
            row,
            field: field.into(),
            message: message.into(),
        }
    }

    fn file(message: impl Into<String>) -> Self {
        RowError::new(0, "file", message)
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.row == 0 {
            write!(f, "{}: {}", self.field, self.message)
        } else {
            write!(f, "row {}, field {}: {}", self.row, self.field, self.message)
        }
    }
}

/// Every problem found in one import, in row order. Displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportErrors(pub Vec<RowError>);

impl ImportErrors {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, RowError> {
        self.0.iter()
    }

    fn one(error: RowError) -> Self {
        ImportErrors(vec![error])
    }
}

impl fmt::Display for ImportErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} problem{} in the catalogue", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            write!(f, "\n{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ImportErrors {}

/// Reads a catalogue from either format: JSON when the first character (after an optional
/// byte-order mark and whitespace) is `[`, CSV otherwise.
pub fn parse(bytes: &[u8]) -> Result<Vec<Item>, ImportErrors> {
    let start = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    match start.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => parse_json(bytes),
        _ => parse_csv(bytes),
    }
}

/// Reads a CSV catalogue (see the module docs and `data/README.md`).
pub fn parse_csv(bytes: &[u8]) -> Result<Vec<Item>, ImportErrors> {
    let text = decode(bytes, true)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = reader.records();

    let header = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(ImportErrors::one(csv_error(&e))),
        None => return Err(ImportErrors::one(RowError::file("empty file: no header row"))),
    };
    let header_row = line_of(&header);
    let columns = read_header(&header, header_row)?;

    let mut errors = Vec::new();
    let mut rows = Vec::new();
    for record in records {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(csv_error(&e));
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        let row = line_of(&record);
        if record.len() != columns.len() {
            errors.push(RowError::new(
                row,
                "row",
                format!(
                    "has {} cells but the header has {} columns",
                    record.len(),
                    columns.len()
                ),
            ));
            continue;
        }
        let cells: Cells = columns
            .iter()
            .zip(record.iter())
            .map(|(field, cell)| (*field, Raw::Text(cell.to_owned())))
            .collect();
        rows.push((row, cells, Vec::new()));
    }
    finish(rows, errors)
}

/// Reads a JSON catalogue: an array of objects keyed like the CSV columns (see `data/README.md`).
pub fn parse_json(bytes: &[u8]) -> Result<Vec<Item>, ImportErrors> {
    let text = decode(bytes, false)?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| ImportErrors::one(RowError::file(format!("not valid JSON: {e}"))))?;
    let Value::Array(array) = value else {
        return Err(ImportErrors::one(RowError::file(
            "expected a JSON array of item objects",
        )));
    };
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    for (index, element) in array.iter().enumerate() {
        let row = index + 1;
        match element {
            Value::Object(object) => {
                let mut cell_errors = Vec::new();
                let cells = json_cells(row, object, &mut cell_errors);
                rows.push((row, cells, cell_errors));
            }
            _ => errors.push(RowError::new(row, "row", "expected an object")),
        }
    }
    finish(rows, errors)
}

/// Writes items as CSV with the English header of [`COLUMNS`] and English enum names; the
/// result reads back with [`parse_csv`] into the same items.
pub fn to_csv(items: &[Item]) -> Result<String, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(COLUMNS)?;
    for item in items {
        let townships = if item.all_townships {
            "all".to_owned()
        } else {
            item.townships.join(";")
        };
        let materials: Vec<String> = item
            .materials
            .iter()
            .map(|m| format!("{}|{}|{}|{}", m.name, m.required, m.form, m.pages))
            .collect();
        writer.write_record([
            item.item_code.clone(),
            item.implementation_code.clone(),
            item.name.clone(),
            item.item_type.to_string(),
            item.category.to_string(),
            item.domain.clone(),
            item.department.clone(),
            item.delegation.to_string(),
            if item.batch == 0 {
                String::new()
            } else {
                item.batch.to_string()
            },
            townships,
            item.village_intake.to_string(),
            item.level.to_string(),
            item.window.to_string(),
            item.statutory_days.to_string(),
            item.promised_days.to_string(),
            item.immediate.to_string(),
            materials.join(";"),
            item.originals_to_county.to_string(),
        ])?;
    }
    let bytes = writer.into_inner().map_err(|e| csv::Error::from(e.into_error()))?;
    String::from_utf8(bytes).map_err(|e| csv::Error::from(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// Writes items as a pretty-printed JSON array (the serde form of [`Item`]); the result reads
/// back with [`parse_json`] into the same items.
pub fn to_json(items: &[Item]) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(items)
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// One cell of a row before parsing: CSV cells are always text; JSON values may also be lists.
#[derive(Debug)]
enum Raw {
    Text(String),
    /// A JSON array of township codes.
    List(Vec<String>),
    /// A JSON array of material objects, already parsed.
    Materials(Vec<Material>),
    /// A JSON value of the wrong type, already reported.
    Invalid,
}

type Cells = HashMap<&'static str, Raw>;

/// Checks the size and the encoding and strips a UTF-8 byte-order mark. `lines` reports an
/// encoding error by line (CSV) rather than by byte offset alone (JSON).
fn decode(bytes: &[u8], lines: bool) -> Result<&str, ImportErrors> {
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(ImportErrors::one(RowError::file(format!(
            "{} bytes exceeds the import limit of {} bytes (16 MiB); split the catalogue",
            bytes.len(),
            MAX_IMPORT_BYTES
        ))));
    }
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    std::str::from_utf8(body).map_err(|e| {
        let offset = e.valid_up_to();
        let line = body[..offset].iter().filter(|b| **b == b'\n').count() + 1;
        let message = format!(
            "the file is not UTF-8 (invalid bytes at byte {offset}, line {line}); save it as \
             UTF-8 (\"CSV UTF-8\" in Excel, not GBK/GB2312)"
        );
        ImportErrors::one(if lines {
            RowError::new(line, "file", message)
        } else {
            RowError::file(message)
        })
    })
}

fn line_of(record: &csv::StringRecord) -> usize {
    record
        .position()
        .and_then(|p| usize::try_from(p.line()).ok())
        .unwrap_or(0)
}

fn csv_error(e: &csv::Error) -> RowError {
    let row = e.position().and_then(|p| usize::try_from(p.line()).ok()).unwrap_or(0);
    RowError::new(row, "file", format!("unreadable CSV: {e}"))
}

/// Maps header cells to field names; refuses unknown, repeated and missing columns.
fn read_header(header: &csv::StringRecord, row: usize) -> Result<Vec<&'static str>, ImportErrors> {
    let mut errors = Vec::new();
    let mut columns = Vec::with_capacity(header.len());
    for cell in header.iter() {
        let lower = cell.to_ascii_lowercase();
        let field = COLUMNS
            .iter()
            .find(|c| **c == lower)
            .copied()
            .or_else(|| COLUMN_ALIASES.iter().find(|(zh, _)| *zh == cell).map(|(_, en)| *en));
        match field {
            Some(f) if columns.contains(&f) => {
                errors.push(RowError::new(row, cell, format!("column {f} appears twice")));
            }
            Some(f) => columns.push(f),
            None => errors.push(RowError::new(
                row,
                if cell.is_empty() { "(empty)" } else { cell },
                format!("unknown column (expected: {})", COLUMNS.join(", ")),
            )),
        }
    }
    for c in COLUMNS {
        if !columns.contains(&c) {
            errors.push(RowError::new(row, c, "missing required column"));
        }
    }
    if errors.is_empty() {
        Ok(columns)
    } else {
        Err(ImportErrors(errors))
    }
}

/// Turns one JSON object into cells, recording type errors.
fn json_cells(row: usize, object: &serde_json::Map<String, Value>, errors: &mut Vec<RowError>) -> Cells {
    let mut cells = Cells::new();
    for (key, value) in object {
        let Some(field) = COLUMNS
            .iter()
            .chain(JSON_EXTRA_KEYS.iter())
            .find(|c| **c == key.as_str())
            .copied()
        else {
            errors.push(RowError::new(row, key.as_str(), "unknown field"));
            continue;
        };
        let raw = match (field, value) {
            ("townships", Value::Array(list)) => {
                let mut codes = Vec::with_capacity(list.len());
                for v in list {
                    match v {
                        Value::String(s) => codes.push(s.trim().to_owned()),
                        other => errors.push(RowError::new(
                            row,
                            field,
                            format!("expected township codes as strings, found {other}"),
                        )),
                    }
                }
                Raw::List(codes)
            }
            ("materials", Value::Array(list)) => {
                let mut materials = Vec::with_capacity(list.len());
                for (i, v) in list.iter().enumerate() {
                    match json_material(v) {
                        Ok(m) => materials.push(m),
                        Err(e) => errors.push(RowError::new(row, field, format!("entry {}: {e}", i + 1))),
                    }
                }
                Raw::Materials(materials)
            }
            (_, v) => match scalar_text(v) {
                Some(text) => Raw::Text(text),
                None => {
                    errors.push(RowError::new(
                        row,
                        field,
                        format!("expected a string, number or boolean, found {v}"),
                    ));
                    Raw::Invalid
                }
            },
        };
        cells.insert(field, raw);
    }
    cells
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

fn json_material(v: &Value) -> Result<Material, String> {
    let Value::Object(object) = v else {
        return Err(format!("expected an object {{name, required, form, pages}}, found {v}"));
    };
    let mut name = None;
    let mut required = None;
    let mut form = None;
    let mut pages = 0;
    for (key, value) in object {
        let text = scalar_text(value).ok_or_else(|| format!("{key}: expected a scalar"))?;
        match key.as_str() {
            "name" => name = Some(text),
            "required" => {
                required = Some(parse_required(&text).map_err(|e| format!("required: {e}"))?);
            }
            "form" => {
                form = Some(text.parse::<MaterialForm>().map_err(|e| format!("form: {e}"))?);
            }
            "pages" => pages = parse_pages(&text).map_err(|e| format!("pages: {e}"))?,
            other => return Err(format!("unknown key {other:?}")),
        }
    }
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| "name is missing".to_owned())?;
    Ok(Material {
        name,
        required: required.ok_or_else(|| "required is missing".to_owned())?,
        form: form.ok_or_else(|| "form is missing".to_owned())?,
        pages,
    })
}

/// A row read from the file: its number, its cells, and the errors found reading them.
type RawRow = (usize, Cells, Vec<RowError>);

/// Builds and validates every row, then refuses repeated implementation codes.
fn finish(rows: Vec<RawRow>, mut errors: Vec<RowError>) -> Result<Vec<Item>, ImportErrors> {
    let mut items = Vec::with_capacity(rows.len());
    let mut first_row: HashMap<String, usize> = HashMap::with_capacity(rows.len());
    for (row, cells, cell_errors) in rows {
        let before = errors.len();
        errors.extend(cell_errors);
        let mut ctx = Row {
            row,
            cells: &cells,
            errors: &mut errors,
        };
        let (code, item) = ctx.build(before);
        if let Some(code) = code {
            if let Some(first) = first_row.get(&code) {
                errors.push(RowError::new(
                    row,
                    "implementation_code",
                    format!("{code} is already used by row {first}"),
                ));
            } else {
                first_row.insert(code, row);
            }
        }
        items.extend(item);
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        errors.sort_by_key(|e| e.row);
        Err(ImportErrors(errors))
    }
}

/// One row being built: its cells and the shared error list.
struct Row<'a> {
    row: usize,
    cells: &'a Cells,
    errors: &'a mut Vec<RowError>,
}

impl Row<'_> {
    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(RowError::new(self.row, field, message));
    }

    /// The trimmed text of a scalar cell; "" when absent (a JSON key left out).
    fn text(&mut self, field: &'static str) -> Option<String> {
        match self.cells.get(field) {
            None => Some(String::new()),
            Some(Raw::Text(s)) => Some(s.trim().to_owned()),
            Some(Raw::Invalid) => None,
            Some(_) => {
                self.error(field, "expected a single value");
                None
            }
        }
    }

    fn required_text(&mut self, field: &'static str) -> Option<String> {
        let present = self.cells.contains_key(field);
        let text = self.text(field)?;
        if text.is_empty() {
            self.error(field, if present { "must not be empty" } else { "missing field" });
            return None;
        }
        Some(text)
    }

    fn checked_text(&mut self, field: &'static str, check: fn(&str) -> Result<(), String>) -> Option<String> {
        let text = self.required_text(field)?;
        match check(&text) {
            Ok(()) => Some(text),
            Err(e) => {
                self.error(field, e);
                None
            }
        }
    }

    fn term<T: std::str::FromStr<Err = UnknownTerm>>(&mut self, field: &'static str) -> Option<T> {
        let text = self.required_text(field)?;
        match text.parse::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(field, e.to_string());
                None
            }
        }
    }

    /// A whole number; an empty cell is an error unless `empty` gives its value.
    fn number(&mut self, field: &'static str, empty: Option<u32>) -> Option<u32> {
        let text = match empty {
            Some(default) => {
                let t = self.text(field)?;
                if t.is_empty() {
                    return Some(default);
                }
                t
            }
            None => self.required_text(field)?,
        };
        match text.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(field, format!("{text:?} is not a whole number"));
                None
            }
        }
    }

    /// A yes/no cell; empty means no.
    fn flag(&mut self, field: &'static str) -> Option<bool> {
        let text = self.text(field)?;
        if text.is_empty() {
            return Some(false);
        }
        match parse_bool(&text) {
            Some(b) => Some(b),
            None => {
                self.error(field, format!("{text:?} is not a yes/no value (是/否, true/false)"));
                None
            }
        }
    }

    /// `(all_townships, townships)`.
    fn townships(&mut self) -> Option<(bool, Vec<String>)> {
        let (mut all, codes) = match self.cells.get("townships") {
            None => (false, Vec::new()),
            Some(Raw::List(codes)) => (false, codes.clone()),
            Some(Raw::Text(text)) => parse_townships(text),
            Some(Raw::Invalid) => return None,
            Some(Raw::Materials(_)) => {
                self.error("townships", "expected township codes");
                return None;
            }
        };
        if let Err(e) = check_townships(&codes) {
            self.error("townships", e);
            return None;
        }
        if self.cells.contains_key("all_townships") && self.flag("all_townships")? {
            if !codes.is_empty() {
                self.error("townships", "lists townships although all_townships is true");
                return None;
            }
            all = true;
        }
        Some((all, codes))
    }

    fn materials(&mut self) -> Option<Vec<Material>> {
        match self.cells.get("materials") {
            None => Some(Vec::new()),
            Some(Raw::Materials(m)) => Some(m.clone()),
            Some(Raw::Text(text)) => match parse_materials(text) {
                Ok(m) => Some(m),
                Err(problems) => {
                    for p in problems {
                        self.error("materials", p);
                    }
                    None
                }
            },
            Some(Raw::Invalid) => None,
            Some(Raw::List(_)) => {
                self.error("materials", "expected material objects");
                None
            }
        }
    }

    /// The optional `seal` (JSON only): checked against the derived seal, never imported.
    fn seal(&mut self) -> Option<SealType> {
        if !self.cells.contains_key("seal") {
            return None;
        }
        let text = self.text("seal")?;
        if text.is_empty() {
            return None;
        }
        match text.parse::<SealType>() {
            Ok(s) => Some(s),
            Err(e) => {
                self.error("seal", e.to_string());
                None
            }
        }
    }

    /// True when this row already has an error for `field` (since `before`).
    fn failed(&self, before: usize, field: &str) -> bool {
        self.errors[before..].iter().any(|e| e.field == field)
    }

    /// Parses every field (reporting each bad one), then checks the item's rules — also when
    /// some cells failed, skipping only the rules that read a failed cell. Returns the
    /// implementation code when it is well formed, and the item when the row is clean.
    /// `before` is the length of the error list before this row's first error.
    fn build(&mut self, before: usize) -> (Option<String>, Option<Item>) {
        let item_code = self.checked_text("item_code", check_item_code);
        let implementation_code = self.checked_text("implementation_code", check_implementation_code);
        let name = self.required_text("name");
        let item_type = self.term::<ItemType>("item_type");
        let category = self.term::<Category>("category");
        let domain = self.required_text("domain");
        let department = self.required_text("department");
        let delegation = self.term::<DelegationMode>("delegation");
        let batch = self.number("batch", Some(0));
        let townships = self.townships();
        let village_intake = self.flag("village_intake");
        let level = self.term::<ItemLevel>("level");
        let window = self.term::<WindowType>("window");
        let statutory_days = self.number("statutory_days", None);
        let promised_days = self.number("promised_days", None);
        let immediate = self.flag("immediate");
        let materials = self.materials();
        let originals_to_county = self.flag("originals_to_county");
        let given_seal = self.seal();

        let code = implementation_code.clone();
        // Placeholders stand in for failed cells; rules reading them are skipped below.
        let delegation = delegation.unwrap_or(DelegationMode::NotDelegated);
        let category = category.unwrap_or(Category::GovernmentService);
        let (all_townships, townships) = townships.unwrap_or_default();
        let item = Item {
            item_code: item_code.unwrap_or_default(),
            implementation_code: implementation_code.unwrap_or_default(),
            name: name.unwrap_or_default(),
            item_type: item_type.unwrap_or(ItemType::Licence),
            category,
            domain: domain.unwrap_or_default(),
            department: department.unwrap_or_default(),
            delegation,
            batch: batch.unwrap_or_default(),
            all_townships,
            townships,
            village_intake: village_intake.unwrap_or_default(),
            level: level.unwrap_or(ItemLevel::County),
            window: window.unwrap_or(WindowType::Comprehensive),
            statutory_days: statutory_days.unwrap_or_default(),
            promised_days: promised_days.unwrap_or_default(),
            immediate: immediate.unwrap_or_default(),
            materials: materials.unwrap_or_default(),
            originals_to_county: originals_to_county.unwrap_or_default(),
            seal: SealType::derive(delegation, category),
        };
        let mut problems: Vec<(&'static str, String)> = Vec::new();
        if let Some(given) = given_seal
            && given != item.seal
        {
            problems.push((
                "seal",
                format!(
                    "{given} but {delegation} {category} items take {} (the seal is derived, \
                     not imported)",
                    item.seal
                ),
            ));
        }
        for problem in item.validate() {
            let message = match &problem {
                ModelError::Invalid { message, .. } => message.clone(),
                other => other.to_string(),
            };
            problems.push((problem.field(), message));
        }
        for (field, message) in problems {
            let inputs = rule_inputs(field);
            if self.failed(before, field) || inputs.iter().any(|f| self.failed(before, f)) {
                continue;
            }
            self.error(field, message);
        }
        if self.errors.len() == before {
            (code, Some(item))
        } else {
            (code, None)
        }
    }
}

/// The other cells a rule reported under `field` reads (see [`Item::validate`]).
fn rule_inputs(field: &str) -> &'static [&'static str] {
    match field {
        "promised_days" => &["statutory_days", "immediate"],
        "batch" | "townships" => &["delegation"],
        "seal" => &["delegation", "category"],
        _ => &[],
    }
}

/// Yes/no terms: true/false, yes/no, y/n, 1/0, 是/否 (any ASCII case).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "是" => Some(true),
        "false" | "no" | "n" | "0" | "否" => Some(false),
        _ => None,
    }
}

/// A material's `required` cell: the yes/no terms plus 必需/必要/必须 and 非必需/可选/容缺.
fn parse_required(text: &str) -> Result<bool, String> {
    match text.trim() {
        "必需" | "必要" | "必须" => Ok(true),
        "非必需" | "非必要" | "可选" | "容缺" => Ok(false),
        t => parse_bool(t).ok_or_else(|| format!("{t:?} is not a yes/no value (是/否, true/false)")),
    }
}

fn parse_pages(text: &str) -> Result<u32, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(0);
    }
    t.parse::<u32>()
        .map_err(|_| format!("{t:?} is not a whole number of pages"))
}

/// Separators between list entries in a cell: ASCII `;` or the full-width `；`.
fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split([';', '；']).map(str::trim).filter(|s| !s.is_empty())
}

/// `"all"` (or 全部 / 全县) → every township; otherwise codes separated by `;`.
fn parse_townships(text: &str) -> (bool, Vec<String>) {
    let t = text.trim();
    if t.eq_ignore_ascii_case("all") || t == "全部" || t == "全县" {
        (true, Vec::new())
    } else {
        (false, split_list(t).map(str::to_owned).collect())
    }
}

/// Entries `name|required|original_or_copy|pages` separated by `;` (pages may be left out).
fn parse_materials(text: &str) -> Result<Vec<Material>, Vec<String>> {
    let mut materials = Vec::new();
    let mut problems = Vec::new();
    for (i, entry) in split_list(text).enumerate() {
        let parts: Vec<&str> = entry.split('|').map(str::trim).collect();
        let result = match parts.as_slice() {
            [name, required, form] => material(name, required, form, ""),
            [name, required, form, pages] => material(name, required, form, pages),
            _ => Err("expected name|required|original_or_copy|pages".to_owned()),
        };
        match result {
            Ok(m) => materials.push(m),
            Err(e) => problems.push(format!("entry {} ({entry:?}): {e}", i + 1)),
        }
    }
    if problems.is_empty() {
        Ok(materials)
    } else {
        Err(problems)
    }
}

fn material(name: &str, required: &str, form: &str, pages: &str) -> Result<Material, String> {
    if name.is_empty() {
        return Err("the name is empty".to_owned());
    }
    Ok(Material {
        name: name.to_owned(),
        required: parse_required(required)?,
        form: form.parse::<MaterialForm>().map_err(|e| e.to_string())?,
        pages: parse_pages(pages)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::model::tests::sample_item;
    use super::*;

    const HEADER: &str = "item_code,implementation_code,name,item_type,category,domain,department,delegation,batch,townships,village_intake,level,window,statutory_days,promised_days,immediate,materials,originals_to_county\n";

    fn csv_with(rows: &[&str]) -> String {
        let mut s = HEADER.to_owned();
        for r in rows {
            s.push_str(r);
            s.push('\n');
        }
        s
    }

    const GOOD_EN: &str = "000201001000,A-1,个体工商户设立登记,confirmation,government_service,市场监管,五华县市场监督管理局,entrusted,1,441424100;441424104,true,township,specialised,15,3,false,个体工商户登记申请书|true|original|2;经营者身份证明|true|copy|1,true";
    const GOOD_ZH: &str = "000201001000,A-1,个体工商户设立登记,行政确认,政务服务,市场监管,五华县市场监督管理局,委托,1,441424100；441424104,是,镇级,专门服务,15,3,否,个体工商户登记申请书|是|原件|2；经营者身份证明|必需|复印件|1,是";

    #[test]
    fn enum_cells_accept_english_and_chinese() {
        let en = parse_csv(csv_with(&[GOOD_EN]).as_bytes()).unwrap();
        let zh = parse_csv(csv_with(&[GOOD_ZH]).as_bytes()).unwrap();
        assert_eq!(en, zh);
        assert_eq!(en, vec![sample_item("A-1")]);
    }

    #[test]
    fn every_bad_row_is_reported_with_row_and_field() {
        let text = csv_with(&[
            GOOD_EN,
            // line 3: promised > statutory
            "000201001000,A-2,个体工商户变更登记,confirmation,government_service,市场监管,五华县市场监督管理局,entrusted,1,all,true,township,specialised,20,30,false,,false",
            // line 4: bad delegation and bad township code
            "000201001000,A-3,个体工商户注销登记,confirmation,government_service,市场监管,五华县市场监督管理局,delegated,1,44142410,true,township,specialised,20,3,false,,false",
            // line 5: not delegated but in a batch; bad item code
            "0002-01,A-4,名称,licence,government_service,市场监管,五华县市场监督管理局,不下放,2,,否,县级,专门服务,20,3,否,,否",
            // line 6: wrong cell count
            "000201001000,A-5",
            // line 7: immediate with days; bad material
            "000201001000,A-6,证明,confirmation,public_service,民政,五华县民政局,authorised,2,all,true,township,comprehensive,5,2,true,申请表|maybe|original|1,false",
        ]);
        let errors = parse_csv(text.as_bytes()).unwrap_err();
        let found: Vec<(usize, &str)> = errors.iter().map(|e| (e.row, e.field.as_str())).collect();
        assert_eq!(
            found,
            [
                (3, "promised_days"),
                (4, "delegation"),
                (4, "townships"),
                (5, "item_code"),
                (5, "batch"),
                (6, "row"),
                (7, "materials"),
                (7, "promised_days"),
            ]
        );
        let text = errors.to_string();
        assert!(
            text.contains("row 3, field promised_days: 30 exceeds statutory_days 20"),
            "{text}"
        );
        assert!(text.starts_with("8 problems"), "{text}");
    }

    #[test]
    fn immediate_items_must_promise_zero_days() {
        let row = GOOD_EN.replace(",15,3,false,", ",15,3,true,");
        let errors = parse_csv(csv_with(&[&row]).as_bytes()).unwrap_err();
        assert_eq!(errors.0[0].field, "promised_days");
        let row = GOOD_EN.replace(",15,3,false,", ",15,0,true,");
        assert!(parse_csv(csv_with(&[&row]).as_bytes()).unwrap()[0].immediate);
    }

    #[test]
    fn duplicate_implementation_codes_name_both_rows() {
        let text = csv_with(&[GOOD_EN, &GOOD_EN.replace(",A-1,", ",A-2,"), GOOD_ZH]);
        let errors = parse_csv(text.as_bytes()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors.0[0].row, 4);
        assert_eq!(errors.0[0].field, "implementation_code");
        assert!(errors.0[0].message.contains("row 2"), "{}", errors);
    }

    #[test]
    fn header_problems_name_the_column() {
        let text = HEADER.replace("window,", "colour,").replace(",batch", "") + GOOD_EN;
        let errors = parse_csv(text.as_bytes()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["colour", "batch", "window"]);
        assert!(errors.iter().all(|e| e.row == 1));
        assert!(
            errors
                .to_string()
                .contains("row 1, field batch: missing required column")
        );
    }

    #[test]
    fn chinese_headers_and_bom_are_accepted() {
        let zh_header: Vec<&str> = COLUMN_ALIASES.iter().map(|(zh, _)| *zh).collect();
        let text = format!("\u{feff}{}\n{GOOD_ZH}\n", zh_header.join(","));
        assert_eq!(parse_csv(text.as_bytes()).unwrap(), vec![sample_item("A-1")]);
    }

    #[test]
    fn files_that_are_not_utf8_or_too_big_are_refused() {
        let mut bytes = csv_with(&[GOOD_EN]).into_bytes();
        bytes.extend_from_slice(b"\xd5\xc5\xc8\xfd\n"); // GBK on line 3
        let errors = parse_csv(&bytes).unwrap_err();
        assert_eq!((errors.0[0].row, errors.0[0].field.as_str()), (3, "file"));
        assert!(errors.to_string().contains("not UTF-8"));
        assert!(parse_json(b"[\"\xff\"]").is_err());

        let big = vec![b' '; MAX_IMPORT_BYTES + 1];
        let errors = parse_csv(&big).unwrap_err();
        assert!(errors.to_string().contains("16 MiB"), "{errors}");
        assert!(parse_json(&big).is_err());
        assert!(parse_csv(b"").is_err());
    }

    #[test]
    fn header_only_is_an_empty_catalogue() {
        assert_eq!(parse_csv(HEADER.as_bytes()).unwrap(), Vec::<Item>::new());
        assert_eq!(parse_json(b"[]").unwrap(), Vec::<Item>::new());
    }

    #[test]
    fn json_round_trip_gives_equal_items() {
        let mut all = sample_item("B-1");
        all.all_townships = true;
        all.townships.clear();
        all.delegation = DelegationMode::Authorised;
        all.category = Category::PublicService;
        all.item_type = ItemType::PublicService;
        all.seal = SealType::TownshipApproval;
        all.immediate = true;
        all.promised_days = 0;
        let items = vec![sample_item("A-1"), all];
        let json = to_json(&items).unwrap();
        assert_eq!(parse_json(json.as_bytes()).unwrap(), items);
        assert_eq!(parse(json.as_bytes()).unwrap(), items);
        let csv = to_csv(&items).unwrap();
        assert_eq!(parse_csv(csv.as_bytes()).unwrap(), items);
        assert_eq!(parse(csv.as_bytes()).unwrap(), items);
    }

    #[test]
    fn json_accepts_the_documented_spreadsheet_style() {
        let json = r#"[{
            "item_code": "000201001000", "implementation_code": "A-1", "name": "个体工商户设立登记",
            "item_type": "行政确认", "category": "政务服务", "domain": "市场监管",
            "department": "五华县市场监督管理局", "delegation": "委托", "batch": 1,
            "townships": ["441424100", "441424104"], "village_intake": "是", "level": "township",
            "window": "专门服务", "statutory_days": 15, "promised_days": "3", "immediate": false,
            "materials": [
                {"name": "个体工商户登记申请书", "required": true, "form": "原件", "pages": 2},
                {"name": "经营者身份证明", "required": "是", "form": "copy", "pages": 1}
            ],
            "originals_to_county": true
        }]"#;
        assert_eq!(parse_json(json.as_bytes()).unwrap(), vec![sample_item("A-1")]);
    }

    /// The fenced block of `lang` in `data/README.md`.
    fn readme_block(lang: &str) -> &'static str {
        let readme = include_str!("../../../data/README.md");
        let start = readme.find(&format!("```{lang}\n")).unwrap() + lang.len() + 4;
        let len = readme[start..].find("```").unwrap();
        &readme[start..start + len]
    }

    #[test]
    fn the_readme_examples_parse_to_the_same_item() {
        let from_csv = parse_csv(readme_block("csv").as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let from_json = parse_json(readme_block("json").as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_csv.len(), 1);
        assert_eq!(from_csv, from_json);
        let sample = parse_csv(include_bytes!("../../../data/wuhua-catalogue.csv")).unwrap();
        assert!(sample.contains(&from_csv[0]));

        let text = csv_with(&[&GOOD_ZH.replace(",委托,", ",下放,")]);
        let errors = parse_csv(text.as_bytes()).unwrap_err();
        assert_eq!(
            errors.0[0].to_string(),
            "row 2, field delegation: unknown delegation mode \"下放\" (expected one of: \
             authorised/授权, entrusted/委托, not_delegated/不下放)"
        );
    }

    #[test]
    fn json_errors_name_index_and_field() {
        let json = r#"[
            {"item_code": "000201001000"},
            42,
            {"item_code": "1", "implementation_code": "X", "name": "n", "item_type": "licence",
             "category": "government_service", "domain": "d", "department": "d",
             "delegation": "authorised", "batch": 1, "townships": "all", "level": "township",
             "window": "specialised", "statutory_days": 20, "promised_days": 5,
             "seal": "county", "colour": "red"}
        ]"#;
        let errors = parse_json(json.as_bytes()).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.row == 1 && e.field == "name" && e.message == "missing field")
        );
        assert!(errors.iter().any(|e| e.row == 2 && e.field == "row"));
        assert!(errors.iter().any(|e| e.row == 3 && e.field == "colour"));
        assert!(errors.iter().any(|e| e.row == 3 && e.field == "seal"));
        assert!(parse_json(b"{}").is_err());
        assert_eq!(parse_json(b"[1,").unwrap_err().0[0].field, "file");
    }
}
