//! Printable labels as standalone SVG: material boxes, documents and trips, each with a QR code.
//!
//! This module owns the label layouts (sizes in millimetres), the QR encoding of each label's
//! payload (the one id a courier's or clerk's scanner reads), the human-readable id printed under
//! the QR, XML escaping and truncation of the printed text, and the tiling of document labels on
//! A4 sheets. It does no I/O: callers write the strings wherever they go (a file, a print spool,
//! an HTTP response).
//!
//! Print the SVG at 100 % ("actual size"), never "fit to page": every length is in millimetres so
//! that a label lands on its die-cut blank.

use std::fmt::{self, Write as _};

use qrcode::types::QrError;
use qrcode::{Color, EcLevel, QrCode};
use unicode_width::UnicodeWidthChar;

/// Proportional text. A CJK face comes first so Chinese renders the same on Linux offices (Noto,
/// Source Han) and Windows ones (SimHei) instead of falling back to boxes.
const SANS: &str = "Noto Sans CJK SC, Source Han Sans SC, SimHei, sans-serif";
/// Ids and numbers a clerk may have to type when the scanner fails: monospace so every character
/// is counted and placed the same, DejaVu first for its slashed zero.
const MONO: &str = "DejaVu Sans Mono, Noto Sans Mono CJK SC, Consolas, monospace";

/// The QR quiet zone in modules, as the QR specification requires for normal (non-micro) codes.
const QUIET_MODULES: usize = 4;
/// Smallest module we print. Below about half a millimetre handheld scanners and 203 dpi label
/// printers become unreliable, so a longer payload is refused instead of printed unreadable.
const MIN_MODULE_MM: f64 = 0.5;
/// Module sizes are rounded down to this step: one dot of a 203 dpi (8 dots/mm) label printer, so
/// every module is the same whole number of dots and none prints a dot thinner than its neighbours.
const MODULE_STEP_MM: f64 = 0.125;
/// Smallest text height we print for values that must be read whole (about 5 pt).
const MIN_TEXT_MM: f64 = 1.8;

/// Estimated advance of a narrow (Latin, digit) glyph, in em. Generous for proportional faces and
/// exact for the monospace ones, so text measured with it does not overrun its box.
const NARROW_EM: f64 = 0.6;
/// Advance of a wide (CJK, full-width) glyph, in em.
const WIDE_EM: f64 = 1.0;
/// The ellipsis that marks a truncated name. CJK fonts draw it full-width, so it counts as wide.
const ELLIPSIS: char = '…';

/// What a box label shows. The QR payload is the box id alone (what a courier's scanner reads).
#[derive(Debug, Clone, Copy)]
pub struct BoxLabel<'a> {
    pub box_id: &'a str,
    /// The office that owns the box, e.g. "五华县政务服务中心".
    pub owner_name: &'a str,
    /// The owner's division code, e.g. "441424".
    pub owner_code: &'a str,
    /// A short title, e.g. "材料流转箱 material box".
    pub note: &'a str,
}

/// What a document label shows. The QR payload is the document id.
#[derive(Debug, Clone, Copy)]
pub struct DocumentLabel<'a> {
    pub document_id: &'a str,
    pub case_number: &'a str,
    pub item_name: &'a str,
    /// "original 原件", "copy 复印件" or "result certificate 结果证照".
    pub kind: &'a str,
    pub pages: u32,
    pub applicant_masked: &'a str,
}

/// A trip label, stuck on a sealed box for one dispatch. The QR payload is the trip id; the label
/// shows origin, destination, seal number and date.
#[derive(Debug, Clone, Copy)]
pub struct TripLabel<'a> {
    pub trip_id: &'a str,
    pub box_id: &'a str,
    pub origin: &'a str,
    pub destination: &'a str,
    pub seal_number: &'a str,
    pub date: &'a str,
}

/// Why a label cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// An id (a QR payload) is empty or only whitespace.
    #[error("{field} is empty")]
    EmptyId { field: &'static str },
    /// An id holds whitespace or a control character, which a clerk could not type back reliably.
    #[error("{field} {value:?} contains whitespace or a control character")]
    InvalidId { field: &'static str, value: String },
    /// The payload needs a QR code too dense to scan at this label's size (or any QR code at all).
    #[error("{field} is too long for a scannable QR code on this label ({bytes} bytes)")]
    PayloadTooLong { field: &'static str, bytes: usize },
    /// A value that must be printed whole (an id, a case or seal number) does not fit its line at
    /// the smallest legible size.
    #[error("{field} is too long to print legibly on this label ({chars} characters)")]
    TextTooLong { field: &'static str, chars: usize },
    /// The QR encoder refused the payload for another reason.
    #[error("QR encoding of {field} failed: {source}")]
    Qr {
        field: &'static str,
        #[source]
        source: QrError,
    },
    /// One label of a sheet cannot be rendered; `index` is its position in the input, from 0.
    #[error("document label {index}: {source}")]
    Sheet {
        index: usize,
        #[source]
        source: Box<LabelError>,
    },
}

/// Box label: 100 × 70 mm, large QR for scanning at arm's length on a shelf.
const BOX_SIZE: (f64, f64) = (100.0, 70.0);
/// Trip label: same blank as the box label, so one roll serves both.
const TRIP_SIZE: (f64, f64) = (100.0, 70.0);
/// Document label: 70 × 37 mm, the common 24-up A4 blank (3 × 8, no gutters).
const DOC_SIZE: (f64, f64) = (70.0, 37.0);
/// A4 portrait.
const A4: (f64, f64) = (210.0, 297.0);
const SHEET_COLUMNS: usize = 3;
const SHEET_ROWS: usize = 8;
/// Labels per A4 sheet.
pub const LABELS_PER_SHEET: usize = SHEET_COLUMNS * SHEET_ROWS;

/// Renders a box label (100 × 70 mm).
pub fn box_label_svg(label: &BoxLabel) -> Result<String, LabelError> {
    let mut body = Body::default();
    box_body(&mut body, label)?;
    Ok(standalone(BOX_SIZE, &format!("箱 box {}", label.box_id), &body))
}

/// Renders a document label (70 × 37 mm).
pub fn document_label_svg(label: &DocumentLabel) -> Result<String, LabelError> {
    let mut body = Body::default();
    document_body(&mut body, label)?;
    Ok(standalone(
        DOC_SIZE,
        &format!("材料 document {}", label.document_id),
        &body,
    ))
}

/// Renders a trip label (100 × 70 mm).
pub fn trip_label_svg(label: &TripLabel) -> Result<String, LabelError> {
    let mut body = Body::default();
    trip_body(&mut body, label)?;
    Ok(standalone(TRIP_SIZE, &format!("流转 trip {}", label.trip_id), &body))
}

/// Tiles document labels on A4 sheets (210 × 297 mm), 3 columns × 8 rows of 70 × 37 mm, filled row
/// by row; returns one SVG per sheet (none for no labels). The first label that cannot be rendered
/// fails the whole batch, so a half-printed sheet never has to be matched up by hand.
pub fn document_sheet_svg(labels: &[DocumentLabel]) -> Result<Vec<String>, LabelError> {
    // 8 × 37 = 296 mm: the blank's 0.5 mm spare is split above and below the grid.
    let top = (A4.1 - SHEET_ROWS as f64 * DOC_SIZE.1) / 2.0;
    let left = (A4.0 - SHEET_COLUMNS as f64 * DOC_SIZE.0) / 2.0;
    let pages = labels.len().div_ceil(LABELS_PER_SHEET);
    let mut out = Vec::with_capacity(pages);
    for (page, chunk) in labels.chunks(LABELS_PER_SHEET).enumerate() {
        let mut sheet = Body::default();
        for (slot, label) in chunk.iter().enumerate() {
            let index = page * LABELS_PER_SHEET + slot;
            let mut body = Body::default();
            document_body(&mut body, label).map_err(|e| LabelError::Sheet {
                index,
                source: Box::new(e),
            })?;
            let x = left + (slot % SHEET_COLUMNS) as f64 * DOC_SIZE.0;
            let y = top + (slot / SHEET_COLUMNS) as f64 * DOC_SIZE.1;
            // A nested <svg> clips its content, so an overlong glyph can never bleed onto the
            // neighbouring label. No cut lines: the blanks are pre-cut and lines would show any
            // feed misalignment.
            let _ = write!(
                sheet.0,
                r#"<svg class="label" x="{}" y="{}" width="{}" height="{}" viewBox="0 0 {} {}">"#,
                Mm(x),
                Mm(y),
                Mm(DOC_SIZE.0),
                Mm(DOC_SIZE.1),
                Mm(DOC_SIZE.0),
                Mm(DOC_SIZE.1)
            );
            sheet.0.push_str(&body.0);
            sheet.0.push_str("</svg>\n");
        }
        let title = format!("材料标签 document labels, sheet {} of {pages}", page + 1);
        out.push(standalone(A4, &title, &sheet));
    }
    Ok(out)
}

fn box_body(b: &mut Body, label: &BoxLabel) -> Result<(), LabelError> {
    check_id("box_id", label.box_id)?;
    qr_with_id_below(b, "box_id", label.box_id, BIG_QR)?;
    // Right column: the title, then who the box belongs to (so a stray box finds its way home).
    let (x, w) = (58.0, 39.0);
    b.lines(x, 9.0, 5.5, w, 4.6, Face::SansBold, label.note, 2);
    b.rule(x, 19.5, x + w);
    b.caption(x, 25.5, "所属单位 Owner");
    b.lines(x, 31.0, 4.8, w, 3.8, Face::SansBold, label.owner_name, 2);
    b.caption(x, 43.0, "单位代码 Code");
    b.line(x, 48.5, w, 3.6, 2.5, Face::Mono, label.owner_code);
    Ok(())
}

fn trip_body(b: &mut Body, label: &TripLabel) -> Result<(), LabelError> {
    check_id("trip_id", label.trip_id)?;
    check_id("box_id", label.box_id)?;
    qr_with_id_below(b, "trip_id", label.trip_id, BIG_QR)?;
    let (x, w) = (58.0, 39.0);
    // Destination first and largest: it is what a courier sorts by.
    b.caption(x, 6.5, "送至 To");
    b.lines(x, 12.0, 5.0, w, 4.2, Face::SansBold, label.destination, 2);
    b.caption(x, 24.0, "发自 From");
    b.line(x, 29.0, w, 3.6, 2.8, Face::SansBold, label.origin);
    // Seal number, box id and date are checked against the box by hand, so they print whole or
    // not at all: a truncated seal number would be worse than none.
    b.caption(x, 35.5, "封条号 Seal No.");
    b.whole(
        x,
        40.5,
        w,
        3.8,
        Face::MonoBold,
        Anchor::Start,
        "seal_number",
        label.seal_number,
    )?;
    b.caption(x, 47.0, "箱号 Box");
    b.whole(x, 52.0, w, 3.6, Face::Mono, Anchor::Start, "box_id", label.box_id)?;
    b.caption(x, 58.5, "日期 Date");
    b.whole(x, 63.5, w, 3.6, Face::Mono, Anchor::Start, "date", label.date)?;
    Ok(())
}

fn document_body(b: &mut Body, label: &DocumentLabel) -> Result<(), LabelError> {
    check_id("document_id", label.document_id)?;
    b.qr("document_id", label.document_id, DOC_QR)?;
    // The id runs under the QR across the whole label: document ids are long and this blank small.
    b.whole(
        3.0,
        33.5,
        64.0,
        2.6,
        Face::MonoBold,
        Anchor::Start,
        "document_id",
        label.document_id,
    )?;
    let (x, w) = (30.0, 37.0);
    b.whole(
        x,
        5.5,
        w,
        2.5,
        Face::MonoBold,
        Anchor::Start,
        "case_number",
        label.case_number,
    )?;
    b.lines(x, 10.3, 3.8, w, 3.0, Face::SansBold, label.item_name, 2);
    b.line(x, 19.0, w, 2.5, 2.0, Face::SansBold, label.kind);
    let page_word = if label.pages == 1 { "page" } else { "pages" };
    let pages = format!("{} 页 {page_word}", label.pages);
    b.line(x, 22.8, w, 2.5, 2.0, Face::Sans, &pages);
    if !clean(label.applicant_masked).is_empty() {
        let applicant = format!("申请人 {}", label.applicant_masked);
        b.line(x, 26.6, w, 2.5, 2.0, Face::Sans, &applicant);
    }
    Ok(())
}

/// Where a QR block (quiet zone included) goes: its top-left corner and side, in mm.
#[derive(Clone, Copy)]
struct QrPlace {
    x: f64,
    y: f64,
    size: f64,
}

/// The QR block of the 100 × 70 mm box and trip labels.
const BIG_QR: QrPlace = QrPlace {
    x: 1.0,
    y: 1.0,
    size: 56.0,
};
/// The QR block of the 70 × 37 mm document label. Its quiet zone (4 modules, about 3 mm) doubles as
/// the margin an office printer cannot print in, so the block may start half a millimetre from the
/// blank's edge.
const DOC_QR: QrPlace = QrPlace {
    x: 0.5,
    y: 0.5,
    size: 28.0,
};

/// A QR block with the id centred under it, as on the box and trip labels.
fn qr_with_id_below(b: &mut Body, field: &'static str, id: &str, place: QrPlace) -> Result<(), LabelError> {
    b.qr(field, id, place)?;
    let centre = place.x + place.size / 2.0;
    b.whole(
        centre,
        place.y + place.size + 5.5,
        place.size - 4.0,
        4.2,
        Face::MonoBold,
        Anchor::Middle,
        field,
        id,
    )
}

/// Refuses ids a scanner or a clerk could not round-trip.
fn check_id(field: &'static str, id: &str) -> Result<(), LabelError> {
    if id.trim().is_empty() {
        return Err(LabelError::EmptyId { field });
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(LabelError::InvalidId {
            field,
            value: id.to_owned(),
        });
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Face {
    Sans,
    SansBold,
    Mono,
    MonoBold,
}

#[derive(Clone, Copy)]
enum Anchor {
    Start,
    Middle,
}

/// The elements of one label, in millimetre user units with the label's top-left at the origin.
#[derive(Default)]
struct Body(String);

impl Body {
    /// One line of text. `content` is escaped here, so callers pass it raw.
    fn text(&mut self, x: f64, y: f64, size: f64, face: Face, anchor: Anchor, content: &str) {
        // Writing to a String cannot fail.
        let _ = write!(self.0, r#"<text x="{}" y="{}" font-size="{}""#, Mm(x), Mm(y), Mm(size));
        if matches!(face, Face::Mono | Face::MonoBold) {
            let _ = write!(self.0, r#" font-family="{}""#, escape(MONO));
        }
        if matches!(face, Face::SansBold | Face::MonoBold) {
            self.0.push_str(r#" font-weight="bold""#);
        }
        if matches!(anchor, Anchor::Middle) {
            self.0.push_str(r#" text-anchor="middle""#);
        }
        let _ = writeln!(self.0, ">{}</text>", escape(content));
    }

    /// A small caption above a value. Black like everything else: label printers are one-bit and
    /// would dither grey into a speckle.
    fn caption(&mut self, x: f64, y: f64, content: &str) {
        self.text(x, y, 2.5, Face::Sans, Anchor::Start, content);
    }

    /// Free text (a name, a note) in at most `max_lines` lines of `width` mm, the last one
    /// truncated with an ellipsis if the text is longer.
    #[allow(clippy::too_many_arguments)] // the layout functions above read best as positional geometry
    fn lines(
        &mut self,
        x: f64,
        y: f64,
        leading: f64,
        width: f64,
        size: f64,
        face: Face,
        content: &str,
        max_lines: usize,
    ) {
        for (i, line) in fit_lines(content, width / size, max_lines).iter().enumerate() {
            self.text(x, y + i as f64 * leading, size, face, Anchor::Start, line);
        }
    }

    /// One line of free text, shrunk (down to `min_size`) before it is truncated: a short field
    /// such as the document kind is worth reading whole in slightly smaller type.
    #[allow(clippy::too_many_arguments)] // the layout functions above read best as positional geometry
    fn line(&mut self, x: f64, y: f64, width: f64, max_size: f64, min_size: f64, face: Face, content: &str) {
        let ems = text_ems(&clean(content));
        let size = if ems > 0.0 {
            (width / ems).min(max_size).max(min_size)
        } else {
            max_size
        };
        self.lines(x, y, 0.0, width, size, face, content, 1);
    }

    /// A value that must be printed whole: shrunk to fit `width` mm, down to [`MIN_TEXT_MM`],
    /// refused beyond that.
    #[allow(clippy::too_many_arguments)] // the layout functions above read best as positional geometry
    fn whole(
        &mut self,
        x: f64,
        y: f64,
        width: f64,
        max_size: f64,
        face: Face,
        anchor: Anchor,
        field: &'static str,
        content: &str,
    ) -> Result<(), LabelError> {
        let content = clean(content);
        if content.is_empty() {
            return Ok(());
        }
        let size = (width / text_ems(&content)).min(max_size);
        if size < MIN_TEXT_MM {
            return Err(LabelError::TextTooLong {
                field,
                chars: content.chars().count(),
            });
        }
        self.text(x, y, size, face, anchor, &content);
        Ok(())
    }

    /// A horizontal hairline that separates a title from the fields under it.
    fn rule(&mut self, x1: f64, y: f64, x2: f64) {
        let _ = writeln!(
            self.0,
            r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#000" stroke-width="0.3"/>"##,
            Mm(x1),
            Mm(y),
            Mm(x2),
            Mm(y)
        );
    }

    /// A QR code for `payload` (error correction M, 4-module quiet zone) centred in the square
    /// `place`. Dark modules are drawn as one rectangle per horizontal run, in module units under a
    /// scale transform, so the geometry is exact integers and the file stays small.
    fn qr(&mut self, field: &'static str, payload: &str, place: QrPlace) -> Result<(), LabelError> {
        let too_long = || LabelError::PayloadTooLong {
            field,
            bytes: payload.len(),
        };
        let code = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M).map_err(|e| match e {
            QrError::DataTooLong => too_long(),
            source => LabelError::Qr { field, source },
        })?;
        let n = code.width();
        let total = n + 2 * QUIET_MODULES;
        let module = (place.size / total as f64 / MODULE_STEP_MM).floor() * MODULE_STEP_MM;
        if module < MIN_MODULE_MM {
            return Err(too_long());
        }
        let offset = (place.size - module * total as f64) / 2.0;
        let _ = writeln!(
            self.0,
            r##"<g class="qr" transform="translate({} {}) scale({})" shape-rendering="crispEdges">"##,
            Mm(place.x + offset),
            Mm(place.y + offset),
            Mm(module)
        );
        // The quiet zone is painted, not merely left empty, so nothing drawn later can intrude.
        let _ = writeln!(self.0, r##"<rect width="{total}" height="{total}" fill="#fff"/>"##);
        self.0.push_str("<g class=\"qr-modules\" fill=\"#000\">\n");
        let colors = code.to_colors();
        for (y, row) in colors.chunks(n).enumerate() {
            let mut x = 0;
            while x < n {
                if row[x] == Color::Dark {
                    let start = x;
                    while x < n && row[x] == Color::Dark {
                        x += 1;
                    }
                    let _ = writeln!(
                        self.0,
                        r#"<rect x="{}" y="{}" width="{}" height="1"/>"#,
                        start + QUIET_MODULES,
                        y + QUIET_MODULES,
                        x - start
                    );
                } else {
                    x += 1;
                }
            }
        }
        self.0.push_str("</g>\n</g>\n");
        Ok(())
    }
}

/// Wraps a label (or sheet) body into a standalone SVG document sized in millimetres.
fn standalone(size: (f64, f64), title: &str, body: &Body) -> String {
    let (w, h) = (Mm(size.0), Mm(size.1));
    let mut out = String::with_capacity(body.0.len() + 512);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{w}mm" height="{h}mm" viewBox="0 0 {w} {h}">"#
    );
    let _ = writeln!(out, "<title>{}</title>", escape(title));
    // White background: a viewer's transparent checkerboard must not look like a grey label.
    let _ = writeln!(out, r##"<rect width="{w}" height="{h}" fill="#fff"/>"##);
    let _ = writeln!(out, r##"<g font-family="{}" fill="#000">"##, escape(SANS));
    out.push_str(&body.0);
    out.push_str("</g>\n</svg>\n");
    out
}

/// A length in millimetres, printed with at most three decimals and no trailing zeros.
struct Mm(f64);

impl fmt::Display for Mm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rounded = (self.0 * 1000.0).round() / 1000.0;
        write!(f, "{}", if rounded == 0.0 { 0.0 } else { rounded })
    }
}

/// Escapes the five XML special characters, and replaces with U+FFFD the characters XML 1.0 cannot
/// carry even escaped (most C0 controls, U+FFFE, U+FFFF), which would make the whole file unparseable.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Collapses whitespace and control characters to single spaces, as SVG would render them anyway,
/// so measuring and truncating see what will be printed.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Estimated advance of one character, in em.
fn char_ems(c: char) -> f64 {
    if c == ELLIPSIS || c.width().unwrap_or(0) >= 2 {
        WIDE_EM
    } else {
        NARROW_EM
    }
}

fn text_ems(s: &str) -> f64 {
    s.chars().map(char_ems).sum()
}

/// Breaks `text` into at most `max_lines` lines of at most `budget` em each, counting characters
/// by their estimated width (a CJK character as wide as about two Latin ones). A line may break
/// anywhere (Chinese has no spaces), but not inside a Latin word when there is a space to break at.
/// Text left over after the last line is cut with an ellipsis.
fn fit_lines(text: &str, budget: f64, max_lines: usize) -> Vec<String> {
    let chars: Vec<char> = clean(text).chars().collect();
    let mut lines = Vec::new();
    let mut start = 0;
    while start < chars.len() && lines.len() < max_lines {
        let mut end = start;
        let mut used = 0.0;
        while end < chars.len() && used + char_ems(chars[end]) <= budget {
            used += char_ems(chars[end]);
            end += 1;
        }
        if end == chars.len() {
            lines.push(chars[start..end].iter().collect::<String>());
            break;
        }
        if lines.len() + 1 == max_lines {
            while end > start && used + WIDE_EM > budget {
                end -= 1;
                used -= char_ems(chars[end]);
            }
            let mut line: String = chars[start..end].iter().collect::<String>().trim_end().to_owned();
            line.push(ELLIPSIS);
            lines.push(line);
            break;
        }
        let splits_word = end > start && is_word_char(chars[end]) && is_word_char(chars[end - 1]);
        if splits_word
            && let Some(space) = chars[start..end].iter().rposition(|c| *c == ' ')
            && space > 0
        {
            end = start + space;
        }
        // A single glyph wider than the line still goes on a line of its own, so the loop ends.
        end = end.max(start + 1);
        lines.push(chars[start..end].iter().collect::<String>().trim_end().to_owned());
        start = end;
        while start < chars.len() && chars[start] == ' ' {
            start += 1;
        }
    }
    lines
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const BOX_ID: &str = "BOX-441424-000123";
    const DOC_ID: &str = "441424100-0192f3a4b5c60001a1b2c3d4e5f60718";
    const TRIP_ID: &str = "TRIP-441424100-20261127-0042";

    fn a_box() -> BoxLabel<'static> {
        BoxLabel {
            box_id: BOX_ID,
            owner_name: "五华县政务服务中心",
            owner_code: "441424",
            note: "材料流转箱 material box",
        }
    }

    fn a_document(id: &str) -> DocumentLabel<'_> {
        DocumentLabel {
            document_id: id,
            case_number: "441424100201-20261127-0007",
            item_name: "城乡居民基本养老保险参保登记",
            kind: "original 原件",
            pages: 3,
            applicant_masked: "张** 441424********1234",
        }
    }

    fn a_trip() -> TripLabel<'static> {
        TripLabel {
            trip_id: TRIP_ID,
            box_id: BOX_ID,
            origin: "水寨镇便民服务中心",
            destination: "五华县政务服务中心",
            seal_number: "FT-2026-000871",
            date: "2026-11-27",
        }
    }

    fn texts(doc: &roxmltree::Document) -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or("").to_owned())
            .collect()
    }

    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).expect("label is well-formed XML")
    }

    /// The dark modules as drawn: (grid side including the quiet zone, row-major dark flags).
    fn drawn_modules(qr: roxmltree::Node) -> (usize, Vec<bool>) {
        let attr = |n: roxmltree::Node, a: &str| n.attribute(a).unwrap().parse::<usize>().unwrap();
        let quiet = qr.children().find(|n| n.has_tag_name("rect")).expect("quiet zone rect");
        let side = attr(quiet, "width");
        let modules = qr
            .children()
            .find(|n| n.attribute("class") == Some("qr-modules"))
            .unwrap();
        let mut grid = vec![false; side * side];
        for rect in modules.children().filter(|n| n.has_tag_name("rect")) {
            let (x, y, w) = (attr(rect, "x"), attr(rect, "y"), attr(rect, "width"));
            assert_eq!(attr(rect, "height"), 1);
            for cell in &mut grid[y * side + x..y * side + x + w] {
                assert!(!*cell, "modules drawn twice");
                *cell = true;
            }
        }
        (side, grid)
    }

    fn qr_group<'a>(doc: &'a roxmltree::Document) -> roxmltree::Node<'a, 'a> {
        doc.descendants()
            .find(|n| n.attribute("class") == Some("qr"))
            .expect("a QR group")
    }

    #[test]
    fn labels_are_standalone_svg_in_millimetres() {
        let cases = [
            (box_label_svg(&a_box()).unwrap(), "100mm", "70mm", "0 0 100 70"),
            (
                document_label_svg(&a_document(DOC_ID)).unwrap(),
                "70mm",
                "37mm",
                "0 0 70 37",
            ),
            (trip_label_svg(&a_trip()).unwrap(), "100mm", "70mm", "0 0 100 70"),
        ];
        for (svg, w, h, view_box) in &cases {
            let doc = parse(svg);
            let root = doc.root_element();
            assert_eq!(root.tag_name().namespace(), Some("http://www.w3.org/2000/svg"));
            assert_eq!(root.tag_name().name(), "svg");
            assert_eq!(root.attribute("width"), Some(*w));
            assert_eq!(root.attribute("height"), Some(*h));
            assert_eq!(root.attribute("viewBox"), Some(*view_box));
            let fonts = doc
                .descendants()
                .filter_map(|n| n.attribute("font-family"))
                .collect::<Vec<_>>();
            assert!(fonts.iter().any(|f| f.contains("Noto Sans CJK SC")), "{fonts:?}");
            assert!(fonts.iter().any(|f| f.ends_with("monospace")), "{fonts:?}");
        }
    }

    #[test]
    fn each_label_prints_its_id_and_fields() {
        let doc_svg = box_label_svg(&a_box()).unwrap();
        let t = texts(&parse(&doc_svg));
        for want in [BOX_ID, "五华县政务服务中心", "441424", "材料流转箱"] {
            assert!(t.iter().any(|s| s == want), "{want} missing from {t:?}");
        }

        let doc_svg = document_label_svg(&a_document(DOC_ID)).unwrap();
        let doc = parse(&doc_svg);
        let t = texts(&doc);
        for want in [DOC_ID, "441424100201-20261127-0007", "original 原件", "3 页 pages"] {
            assert!(t.iter().any(|s| s == want), "{want} missing from {t:?}");
        }
        // The id is printed in the monospace face.
        let id = doc.descendants().find(|n| n.text() == Some(DOC_ID)).unwrap();
        assert_eq!(id.attribute("font-family"), Some(MONO));

        let trip_svg = trip_label_svg(&a_trip()).unwrap();
        let t = texts(&parse(&trip_svg));
        for want in [
            TRIP_ID,
            BOX_ID,
            "水寨镇便民服务中心",
            "五华县政务服务中心",
            "FT-2026-000871",
            "2026-11-27",
        ] {
            assert!(t.iter().any(|s| s == want), "{want} missing from {t:?}");
        }
    }

    #[test]
    fn text_is_escaped_everywhere() {
        let nasty = "A<&>\"'B 县";
        let label = BoxLabel {
            box_id: "B<&>\"'1",
            owner_name: nasty,
            owner_code: "<&>",
            note: "'\"",
        };
        let svg = box_label_svg(&label).unwrap();
        assert!(svg.contains("A&lt;&amp;&gt;&quot;&apos;B 县"), "{svg}");
        assert!(!svg.contains("A<&"));
        let t = texts(&parse(&svg));
        assert!(t.iter().any(|s| s == nasty), "{t:?}");
        assert!(t.iter().any(|s| s == "B<&>\"'1"), "{t:?}");
        assert!(t.iter().any(|s| s == "<&>"), "{t:?}");
        let doc = parse(&svg);
        assert_eq!(
            doc.descendants().find(|n| n.has_tag_name("title")).unwrap().text(),
            Some("箱 box B<&>\"'1")
        );

        // Characters XML cannot carry at all never reach the file.
        let label = BoxLabel {
            owner_name: "五华\u{1}县\u{FFFF}",
            ..a_box()
        };
        let svg = box_label_svg(&label).unwrap();
        assert!(!svg.contains('\u{1}') && !svg.contains('\u{FFFF}'));
        parse(&svg);
    }

    #[test]
    fn empty_and_untypeable_ids_are_refused() {
        assert!(matches!(
            box_label_svg(&BoxLabel { box_id: "", ..a_box() }),
            Err(LabelError::EmptyId { field: "box_id" })
        ));
        assert!(matches!(
            document_label_svg(&a_document(" ")),
            Err(LabelError::EmptyId { field: "document_id" })
        ));
        assert!(matches!(
            trip_label_svg(&TripLabel {
                trip_id: "",
                ..a_trip()
            }),
            Err(LabelError::EmptyId { field: "trip_id" })
        ));
        assert!(matches!(
            trip_label_svg(&TripLabel { box_id: "", ..a_trip() }),
            Err(LabelError::EmptyId { field: "box_id" })
        ));
        assert!(matches!(
            box_label_svg(&BoxLabel {
                box_id: "BOX 1",
                ..a_box()
            }),
            Err(LabelError::InvalidId { field: "box_id", .. })
        ));
        assert!(matches!(
            document_label_svg(&a_document("D\n1")),
            Err(LabelError::InvalidId { .. })
        ));
    }

    #[test]
    fn overlong_payloads_are_refused() {
        // Far beyond any QR code's capacity.
        let huge = "9".repeat(8000);
        assert!(matches!(
            box_label_svg(&BoxLabel {
                box_id: &huge,
                ..a_box()
            }),
            Err(LabelError::PayloadTooLong {
                field: "box_id",
                bytes: 8000
            })
        ));
        // Encodable, but modules would be too small to scan on a 70 × 37 mm label.
        let long = "x".repeat(300);
        assert!(matches!(
            document_label_svg(&a_document(&long)),
            Err(LabelError::PayloadTooLong {
                field: "document_id",
                ..
            })
        ));
        // Fits the QR, but cannot be printed whole under it at a legible size.
        let long = "x".repeat(70);
        assert!(matches!(
            document_label_svg(&a_document(&long)),
            Err(LabelError::TextTooLong { .. })
        ));
        let err = trip_label_svg(&TripLabel {
            seal_number: &"8".repeat(40),
            ..a_trip()
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                LabelError::TextTooLong {
                    field: "seal_number",
                    chars: 40
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn long_names_are_truncated_with_an_ellipsis() {
        let name = "广东省梅州市五华县水寨镇人民政府便民服务中心综合受理窗口";
        let label = BoxLabel {
            owner_name: name,
            ..a_box()
        };
        let svg = box_label_svg(&label).unwrap();
        let t = texts(&parse(&svg));
        // The two lines after the caption, the second cut short.
        let at = t.iter().position(|s| s == "所属单位 Owner").unwrap();
        let lines = &t[at + 1..at + 3];
        assert!(lines[1].ends_with(ELLIPSIS), "{t:?}");
        let shown = format!("{}{}", lines[0], lines[1].trim_end_matches(ELLIPSIS));
        assert!(
            name.starts_with(&shown) && shown.chars().count() < name.chars().count(),
            "{shown}"
        );
        // Each line fits the 39 mm column at 3.8 mm type.
        for line in lines {
            assert!(text_ems(line) * 3.8 <= 39.0 + 1e-9, "{line}");
        }

        assert_eq!(
            fit_lines("材料流转箱 material box", 8.0, 2),
            vec!["材料流转箱", "material box"]
        );
        assert_eq!(fit_lines("short", 10.0, 1), vec!["short"]);
        assert_eq!(fit_lines("", 10.0, 1), Vec::<String>::new());
        assert_eq!(fit_lines("一二三四五六", 4.0, 1), vec!["一二三…"]);
        assert_eq!(
            fit_lines("alpha beta gamma delta", 4.0, 3),
            vec!["alpha", "beta", "gamma…"]
        );
    }

    #[test]
    fn short_fields_shrink_before_they_are_cut() {
        let label = DocumentLabel {
            kind: "result certificate 结果证照",
            ..a_document(DOC_ID)
        };
        let svg = document_label_svg(&label).unwrap();
        let t = texts(&parse(&svg));
        assert!(t.iter().any(|s| s == "result certificate 结果证照"), "{t:?}");
        assert!(t.iter().any(|s| s == "申请人 张** 441424********1234"), "{t:?}");
    }

    #[test]
    fn sheets_hold_24_labels_each() {
        let ids: Vec<String> = (0..25).map(|i| format!("441424100-DOC{i:04}")).collect();
        let labels: Vec<_> = ids.iter().map(|id| a_document(id)).collect();
        let pages = document_sheet_svg(&labels).unwrap();
        assert_eq!(pages.len(), 2);
        let mut seen = Vec::new();
        for (page, want) in pages.iter().zip([24, 1]) {
            let doc = parse(page);
            let root = doc.root_element();
            assert_eq!(root.attribute("width"), Some("210mm"));
            assert_eq!(root.attribute("height"), Some("297mm"));
            assert_eq!(root.attribute("viewBox"), Some("0 0 210 297"));
            let cells: Vec<_> = doc
                .descendants()
                .filter(|n| n.attribute("class") == Some("label"))
                .collect();
            assert_eq!(cells.len(), want);
            for cell in cells {
                let num = |a| cell.attribute(a).unwrap().parse::<f64>().unwrap();
                assert!(num("x") >= 0.0 && num("x") + num("width") <= 210.0 + 1e-9);
                assert!(num("y") >= 0.0 && num("y") + num("height") <= 297.0 + 1e-9);
                seen.extend(
                    cell.descendants()
                        .filter(|n| n.has_tag_name("text"))
                        .filter_map(|n| n.text())
                        .filter(|t| t.contains("DOC"))
                        .map(str::to_owned),
                );
            }
        }
        // Every label once, in order.
        assert_eq!(seen, ids);
        assert!(document_sheet_svg(&[]).unwrap().is_empty());

        let mut labels = labels;
        labels[7].document_id = "";
        let err = document_sheet_svg(&labels).unwrap_err();
        assert!(matches!(err, LabelError::Sheet { index: 7, .. }), "{err}");
    }

    #[test]
    fn drawn_modules_are_the_qr_matrix_with_a_quiet_zone() {
        for (svg, payload) in [
            (box_label_svg(&a_box()).unwrap(), BOX_ID),
            (document_label_svg(&a_document(DOC_ID)).unwrap(), DOC_ID),
            (trip_label_svg(&a_trip()).unwrap(), TRIP_ID),
        ] {
            let doc = parse(&svg);
            let (side, grid) = drawn_modules(qr_group(&doc));
            let code = QrCode::with_error_correction_level(payload, EcLevel::M).unwrap();
            assert_eq!(code.error_correction_level(), EcLevel::M);
            let n = code.width();
            assert_eq!(side, n + 2 * QUIET_MODULES);
            for y in 0..side {
                for x in 0..side {
                    let inside = (QUIET_MODULES..QUIET_MODULES + n).contains(&x)
                        && (QUIET_MODULES..QUIET_MODULES + n).contains(&y);
                    let want = inside && code[(x - QUIET_MODULES, y - QUIET_MODULES)] == Color::Dark;
                    assert_eq!(grid[y * side + x], want, "module ({x}, {y}) of {payload}");
                }
            }
        }
    }

    #[test]
    fn drawn_qr_decodes_to_the_payload() {
        for (svg, payload) in [
            (box_label_svg(&a_box()).unwrap(), BOX_ID),
            (document_label_svg(&a_document(DOC_ID)).unwrap(), DOC_ID),
            (trip_label_svg(&a_trip()).unwrap(), TRIP_ID),
        ] {
            let doc = parse(&svg);
            let (side, grid) = drawn_modules(qr_group(&doc));
            // Rasterise the drawn rectangles at 4 pixels per module and scan them.
            let px = 4;
            let mut image =
                rqrr::PreparedImage::prepare_from_bitmap(side * px, side * px, |x, y| grid[(y / px) * side + x / px]);
            let grids = image.detect_grids();
            assert_eq!(grids.len(), 1, "{payload}");
            let (meta, content) = grids[0].decode().unwrap();
            assert_eq!(content, payload);
            assert_eq!(meta.ecc_level, 0, "level M is encoded as 0 in the format bits");
        }
    }

    #[test]
    fn qr_modules_are_printable_and_inside_the_label() {
        for (svg, label_w, label_h) in [
            (box_label_svg(&a_box()).unwrap(), 100.0, 70.0),
            (document_label_svg(&a_document(DOC_ID)).unwrap(), 70.0, 37.0),
        ] {
            let doc = parse(&svg);
            let qr = qr_group(&doc);
            let transform = qr.attribute("transform").unwrap();
            let nums: Vec<f64> = transform
                .split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            let [x, y, module] = nums[..] else {
                panic!("{transform}")
            };
            let (side, _) = drawn_modules(qr);
            assert!(module >= MIN_MODULE_MM);
            assert_eq!((module / MODULE_STEP_MM).fract(), 0.0, "{module}");
            assert!(x >= 0.0 && y >= 0.0);
            assert!(x + side as f64 * module <= label_w && y + side as f64 * module <= label_h);
        }
    }

    #[test]
    fn lengths_print_compactly() {
        assert_eq!(Mm(100.0).to_string(), "100");
        assert_eq!(Mm(0.5).to_string(), "0.5");
        assert_eq!(Mm(1.0 / 3.0).to_string(), "0.333");
        assert_eq!(Mm(-0.0001).to_string(), "0");
    }
}
