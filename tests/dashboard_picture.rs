//! A picture of the dashboard for docs/operations.md: each panel of
//! `contrib/grafana/ferry.json` laid out on its grid position, with what
//! its queries return from the test's Prometheus (stat panels: the
//! values; time series: their lines), shot by headless Chromium.
//! Grafana itself is not packaged for Debian, so the test draws the
//! panels from the same queries rather than screenshotting Grafana.

use std::fmt::Write;

use serde_json::Value;

use ferry_testkit::browser::Browser;
use ferry_testkit::prometheus::Prometheus;

const ROW_PX: u64 = 34;
const COLOURS: [&str; 6] = [
    "#73bf69", "#f2495c", "#5794f2", "#ff9830", "#b877d9", "#fade2a",
];

/// A query as a dashboard showing everything over the last 10 minutes
/// fills in Grafana's variables.
pub fn fill(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range_s", "600")
        .replace("$__range", "10m")
        .replace("$repository", ".*")
        .replace("$environment", ".*")
}

/// `{{label}}` in a legend, from a series' labels.
fn legend(format: &str, metric: &Value) -> String {
    let mut out = format.to_string();
    if let Some(labels) = metric.as_object() {
        for (k, v) in labels {
            out = out.replace(&format!("{{{{{k}}}}}"), v.as_str().unwrap_or(""));
        }
    }
    out
}

fn number(v: &str) -> String {
    match v.parse::<f64>() {
        Ok(n) if n.is_nan() => "NaN".into(),
        Ok(n) if n.abs() >= 100.0 => format!("{n:.0}"),
        Ok(n) => format!("{n:.2}"),
        Err(_) => v.into(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A stat as Grafana shows it in the panel's unit.
fn in_unit(v: &str, unit: &str) -> String {
    match (v.parse::<f64>(), unit) {
        (Ok(n), "s") if n.is_finite() => {
            let s = n.round() as u64;
            match s {
                0..60 => format!("{s}s"),
                60..3600 => format!("{}m", s / 60),
                3600..86400 => format!("{:.1}h", n / 3600.0),
                _ => format!("{:.1}d", n / 86400.0),
            }
        }
        (Ok(n), "percentunit") if n.is_finite() => format!("{:.0}%", n * 100.0),
        _ => number(v),
    }
}

async fn stat(prometheus: &Prometheus, panel: &Value) -> String {
    let unit = panel["fieldConfig"]["defaults"]["unit"]
        .as_str()
        .unwrap_or("");
    let mut body = String::new();
    for t in panel["targets"].as_array().unwrap() {
        let answer = prometheus.query(&fill(t["expr"].as_str().unwrap())).await;
        for r in answer["data"]["result"].as_array().into_iter().flatten() {
            let name = legend(t["legendFormat"].as_str().unwrap_or(""), &r["metric"]);
            let value = in_unit(r["value"][1].as_str().unwrap_or("?"), unit);
            let _ = write!(
                body,
                "<div class=stat><b>{}</b><span>{}</span></div>",
                escape(&value),
                escape(&name)
            );
        }
    }
    body
}

async fn series(prometheus: &Prometheus, panel: &Value, height: u64) -> String {
    let mut lines = Vec::new();
    for t in panel["targets"].as_array().unwrap() {
        let answer = prometheus
            .query_range(&fill(t["expr"].as_str().unwrap()), 120)
            .await;
        for r in answer["data"]["result"].as_array().into_iter().flatten() {
            let points: Vec<(f64, f64)> = r["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p[0].as_f64()?, p[1].as_str()?.parse().ok()?)))
                .filter(|(_, v): &(f64, f64)| v.is_finite())
                .collect();
            let name = legend(t["legendFormat"].as_str().unwrap_or(""), &r["metric"]);
            lines.push((name, points));
        }
    }
    let all: Vec<&(f64, f64)> = lines.iter().flat_map(|(_, p)| p).collect();
    let (t0, t1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), (t, _)| {
        (a.min(*t), b.max(*t))
    });
    let top = all.iter().fold(0.0f64, |m, (_, v)| m.max(*v)).max(1e-9);
    let (w, h) = (1000.0, (height * ROW_PX - 90) as f64);
    let mut svg = format!("<svg viewBox='0 0 {w} {h}' preserveAspectRatio='none'>");
    let mut keys = String::new();
    for (i, (name, points)) in lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(t, v)| {
                let x = if t1 > t0 {
                    (t - t0) / (t1 - t0) * w
                } else {
                    0.0
                };
                format!("{x:.1},{:.1}", h - v / top * (h - 4.0) - 2.0)
            })
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=none stroke='{colour}' stroke-width=2 vector-effect=non-scaling-stroke points='{}'/>",
            path.join(" ")
        );
        let _ = write!(
            keys,
            "<span><i style='background:{colour}'></i>{}</span>",
            escape(name)
        );
    }
    svg.push_str("</svg>");
    format!(
        "<div class=max>max {}</div>{svg}<div class=keys>{keys}</div>",
        number(&top.to_string())
    )
}

/// The page: panels on Grafana's 24-column grid.
pub async fn render(prometheus: &Prometheus, dashboard: &Value) -> String {
    let mut page = String::from(
        "<!doctype html><meta charset=utf-8><style>
        body{margin:0;overflow:hidden;background:#111217;color:#ccccdc;font:13px Inter,Helvetica,Arial,sans-serif}
        h1{font-size:17px;font-weight:500;margin:10px 12px}
        .grid{position:relative;margin:0 8px}
        .p{position:absolute;box-sizing:border-box;padding:4px}
        .p>div{background:#181b1f;border:1px solid #2c3235;border-radius:2px;height:100%;box-sizing:border-box;padding:6px 8px;overflow:hidden}
        .p h2{font-size:13px;font-weight:500;margin:0 0 6px}
        .row h2{font-size:15px;margin:2px 0}.row>div{background:none;border:0;padding:4px 0}
        .stat{display:inline-block;margin:4px 14px 4px 0}
        .stat b{display:block;font-size:26px;color:#73bf69;font-weight:500}
        .stat span{font-size:11px;color:#8e8e8e}
        svg{width:100%;height:calc(100% - 58px);display:block}
        .max{font-size:10px;color:#8e8e8e}
        .keys span{margin-right:10px;font-size:11px}.keys i{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}
        </style>",
    );
    let _ = write!(
        page,
        "<h1>{} <small style='color:#8e8e8e'>(panels of contrib/grafana/ferry.json over the test's Prometheus)</small></h1><div class=grid>",
        escape(dashboard["title"].as_str().unwrap_or(""))
    );
    let mut bottom = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        let g = &panel["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        bottom = bottom.max(y + h);
        let title = escape(panel["title"].as_str().unwrap_or(""));
        let (class, body) = match panel["type"].as_str().unwrap() {
            "row" => ("p row", String::new()),
            "stat" => ("p", stat(prometheus, panel).await),
            _ => ("p", series(prometheus, panel, h).await),
        };
        let _ = write!(
            page,
            "<div class='{class}' style='left:{:.4}%;top:{}px;width:{:.4}%;height:{}px'><div><h2>{title}</h2>{body}</div></div>",
            x as f64 / 24.0 * 100.0,
            y * ROW_PX,
            w as f64 / 24.0 * 100.0,
            h * ROW_PX
        );
    }
    let _ = write!(
        page,
        "</div><div style='height:{}px'></div>",
        bottom * ROW_PX
    );
    page
}

/// Shoots `page` at 1400 px wide.
pub async fn shoot(page: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard.html");
    std::fs::write(&path, page).unwrap();
    let mut browser = Browser::start().await;
    browser
        .call(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({"width": 1400, "height": 1400, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
    browser
        .navigate(&format!("file://{}", path.display()))
        .await;
    browser.screenshot().await
}
