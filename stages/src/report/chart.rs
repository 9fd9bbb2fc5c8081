//! Charts for people: grouped bars or lines with 95% CI whiskers, drawn with plotters into SVG
//! and PNG (text in the DejaVu Sans font embedded in the binary — stages/assets, its licence
//! beside it — so the PNG needs no system fonts).

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::api::error::StageError;

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The embedded font is a valid TrueType file; failure here is a build defect.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One series: legend, palette index (a method keeps its colour across charts), and
/// (mean, CI half-width) per group.
pub type Series = (String, usize, Vec<(f64, f64)>);

/// One chart: groups on x, one series per method, (mean, CI half-width) per group (NaN = none).
pub struct Chart {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Group names.
    pub groups: Vec<String>,
    /// The series.
    pub series: Vec<Series>,
    /// Bars (true) or lines with points.
    pub bars: bool,
}

fn y_range(c: &Chart) -> (f64, f64) {
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for (_, _, v) in &c.series {
        for &(m, ci) in v {
            if m.is_finite() {
                let ci = if ci.is_finite() { ci } else { 0.0 };
                lo = lo.min(m - ci);
                hi = hi.max(m + ci);
            }
        }
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let pad = 0.08 * (hi - lo);
    (if lo < 0.0 { lo - pad } else { 0.0 }, hi + pad)
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, c: &Chart) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let g = c.groups.len().max(1);
    let (lo, hi) = y_range(c);
    let mut chart = ChartBuilder::on(&root)
        .caption(&c.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5f64..(g as f64 - 0.5), lo..hi)
        .map_err(|x| e(&x))?;
    let groups = c.groups.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(g)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                groups.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc(&c.x_label)
        .y_desc(&c.y_label)
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(|x| e(&x))?;
    let m = c.series.len().max(1);
    let width = 0.8 / m as f64;
    for (si, (name, ci, vals)) in c.series.iter().enumerate() {
        let color = Palette99::pick(*ci).to_rgba();
        let offset = if c.bars { (si as f64 - (m as f64 - 1.0) / 2.0) * width } else { 0.0 };
        let pts: Vec<(f64, f64, f64)> = vals
            .iter()
            .enumerate()
            .filter(|(_, v)| v.0.is_finite())
            .map(|(gi, v)| (gi as f64 + offset, v.0, if v.1.is_finite() { v.1 } else { 0.0 }))
            .collect();
        if c.bars {
            chart
                .draw_series(pts.iter().map(|&(x, y, _)| {
                    Rectangle::new([(x - width / 2.0, 0.0f64.max(lo)), (x + width / 2.0, y)], color.filled())
                }))
                .map_err(|x| e(&x))?
                .label(name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        } else {
            chart
                .draw_series(LineSeries::new(pts.iter().map(|&(x, y, _)| (x, y)), color.stroke_width(2)))
                .map_err(|x| e(&x))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2)));
            chart
                .draw_series(pts.iter().map(|&(x, y, _)| Circle::new((x, y), 4, color.filled())))
                .map_err(|x| e(&x))?;
        }
        // 95% CI bars.
        let cap = if c.bars { width / 4.0 } else { 0.06 };
        chart
            .draw_series(pts.iter().filter(|p| p.2 > 0.0).flat_map(|&(x, y, ci)| {
                [
                    PathElement::new(vec![(x, y - ci), (x, y + ci)], BLACK.stroke_width(1)),
                    PathElement::new(vec![(x - cap, y - ci), (x + cap, y - ci)], BLACK.stroke_width(1)),
                    PathElement::new(vec![(x - cap, y + ci), (x + cap, y + ci)], BLACK.stroke_width(1)),
                ]
            }))
            .map_err(|x| e(&x))?;
    }
    if !c.bars && lo < 0.0 {
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(-0.5, 0.0), (g as f64 - 0.5, 0.0)], BLACK.mix(0.5))))
            .map_err(|x| e(&x))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// The chart as SVG text.
pub fn svg(c: &Chart) -> Result<String, StageError> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (900, 520)).into_drawing_area();
        draw(root, c).map_err(|m| StageError::Failed(format!("cannot draw `{}`: {m}", c.title)))?;
    }
    Ok(out)
}

/// The chart as PNG bytes (drawn into a file in `scratch`).
pub fn png(c: &Chart, scratch: &std::path::Path, name: &str) -> Result<Vec<u8>, StageError> {
    register_font();
    let path = scratch.join(format!("{name}.png"));
    {
        let root = BitMapBackend::new(&path, (900, 520)).into_drawing_area();
        draw(root, c).map_err(|m| StageError::Failed(format!("cannot draw `{}`: {m}", c.title)))?;
    }
    std::fs::read(&path).map_err(|source| StageError::Io { path, source })
}

/// A small multiple of training curves: numeric x, one thin line per run (label, palette index,
/// points). NaN points are left out.
pub struct Panel {
    /// Title (the curve's name).
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// The lines.
    pub lines: Vec<Series>,
}

fn finite_range(v: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    v.filter(|x| x.is_finite()).fold(None, |acc, x| match acc {
        None => Some((x, x)),
        Some((lo, hi)) => Some((lo.min(x), hi.max(x))),
    })
}

/// The panel as SVG text, `size` pixels (the same plotters drawing as the charts above).
pub fn panel_svg(p: &Panel, size: (u32, u32)) -> Result<String, StageError> {
    register_font();
    let e = |x: &dyn std::fmt::Display| StageError::Failed(format!("cannot draw `{}`: {x}", p.title));
    let pts = || p.lines.iter().flat_map(|l| l.2.iter().copied());
    let (x0, x1) = finite_range(pts().map(|q| q.0)).unwrap_or((0.0, 1.0));
    let (y0, y1) = finite_range(pts().map(|q| q.1)).unwrap_or((0.0, 1.0));
    let (x1, y1) = (if x1 > x0 { x1 } else { x0 + 1.0 }, if y1 - y0 > 1e-12 { y1 } else { y0 + 1.0 });
    let pad = 0.06 * (y1 - y0);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&p.title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(52)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_labels(4)
            .y_labels(4)
            .x_desc(&p.x_label)
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|x| e(&x))?;
        for (name, ci, pts) in &p.lines {
            let color = Palette99::pick(*ci).to_rgba();
            chart
                .draw_series(LineSeries::new(pts.iter().copied().filter(|q| q.1.is_finite()), color.stroke_width(1)))
                .map_err(|x| e(&x))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], color.stroke_width(2)));
        }
        if p.lines.len() > 1 && p.lines.len() <= 8 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .label_font(("sans-serif", 10))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(|x| e(&x))?;
        }
        root.present().map_err(|x| e(&x))?;
    }
    Ok(out)
}
