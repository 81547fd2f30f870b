// SVG line plots of bench results (runtime/bench.h): plain SVG 1.1 text, no scripts or styles
// from outside, so any browser or image viewer shows it.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <fmt/format.h>

#include "runtime/bench.h"
#include "runtime/error.h"

namespace dsrt {
namespace {

constexpr double kWidth = 760, kHeight = 440;
constexpr double kLeft = 80, kRight = 200, kTop = 48, kBottom = 64;  // margins around the plot area
const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += ch;
    }
  }
  return out;
}

// A number for a tick label: integers without decimals, others with at most 3 significant digits.
std::string label(double v) {
  if (std::fabs(v - std::round(v)) < 1e-9 * std::max(1.0, std::fabs(v))) return fmt::format("{}", std::llround(v));
  return fmt::format("{:.3g}", v);
}

// The smallest 1, 2 or 5 x 10^n step giving at most `ticks` intervals over [0, max].
double nice_step(double max, int ticks) {
  const double raw = max / ticks;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

}  // namespace

std::string render_svg(const Plot& p) {
  std::set<double> xs;
  double ymax = 0;
  for (const PlotSeries& s : p.series)
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y))
        throw Error(fmt::format("plot '{}': series '{}' has a value that is not finite", p.title, s.name));
      if (p.log2_x && x <= 0)
        throw Error(fmt::format("plot '{}': series '{}' has x = {} on a logarithmic axis", p.title, s.name, x));
      xs.insert(x);
      ymax = std::max(ymax, y);
    }
  if (xs.empty()) throw Error(fmt::format("plot '{}': no data points", p.title));

  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto xv = [&](double x) { return p.log2_x ? std::log2(x) : x; };
  const double x0 = xv(*xs.begin()), x1 = xv(*xs.rbegin());
  auto px = [&](double x) { return x1 == x0 ? kLeft + pw / 2 : kLeft + (xv(x) - x0) / (x1 - x0) * pw; };
  const double ystep = nice_step(ymax > 0 ? ymax : 1.0, 5);
  const double ytop = std::max(ystep, std::ceil((ymax > 0 ? ymax : 1.0) / ystep) * ystep);
  auto py = [&](double y) { return kTop + ph - std::max(0.0, y) / ytop * ph; };

  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n",
      kWidth, kHeight);
  svg += fmt::format("<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"white\"/>\n", kWidth, kHeight);
  svg += fmt::format("<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n", kLeft + pw / 2,
                     escape(p.title));
  // Grid and y ticks.
  for (double y = 0; y <= ytop * (1 + 1e-9); y += ystep) {
    svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#dddddd\"/>\n", kLeft,
                       py(y), kLeft + pw, py(y));
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", kLeft - 6, py(y) + 4,
                       label(y));
  }
  // x ticks at the data's x values.
  for (double x : xs) {
    svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#333333\"/>\n", px(x),
                       kTop + ph, kTop + ph + 5);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", px(x), kTop + ph + 18,
                       label(x));
  }
  // Axes and their labels.
  svg += fmt::format("<path d=\"M {0:.1f} {1:.1f} V {2:.1f} H {3:.1f}\" fill=\"none\" stroke=\"#333333\"/>\n", kLeft,
                     kTop, kTop + ph, kLeft + pw);
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", kLeft + pw / 2,
                     kHeight - 16, escape(p.x_label + (p.log2_x ? " (log scale)" : "")));
  svg += fmt::format("<text x=\"18\" y=\"{0:.1f}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {0:.1f})\">{1}</text>\n",
                     kTop + ph / 2, escape(p.y_label));

  // Series: a polyline, a marker per point, a legend entry.
  int drawn = 0;
  for (const PlotSeries& s : p.series) {
    if (s.points.empty()) continue;
    std::vector<std::pair<double, double>> pts = s.points;
    std::sort(pts.begin(), pts.end());
    const char* color = kColors[drawn % (sizeof(kColors) / sizeof(kColors[0]))];
    std::string coords;
    for (const auto& [x, y] : pts) coords += fmt::format("{}{:.1f},{:.1f}", coords.empty() ? "" : " ", px(x), py(y));
    svg += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{}/>\n", coords, color,
                       s.dashed ? " stroke-dasharray=\"6 4\"" : "");
    for (const auto& [x, y] : pts)
      svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"><title>{}: {} at {}</title></circle>\n",
                         px(x), py(y), color, escape(s.name), label(y), label(x));
    const double ly = kTop + 10 + drawn * 20, lx = kLeft + pw + 16;
    svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"2\"{}/>\n",
                       lx, ly, lx + 24, ly, color, s.dashed ? " stroke-dasharray=\"6 4\"" : "");
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", lx + 30, ly + 4, escape(s.name));
    ++drawn;
  }
  svg += "</svg>\n";
  return svg;
}

namespace {

std::string run_label(const nlohmann::json& j) {
  const int ranks = j.value("ranks", 1), threads = j.value("threads", 0);
  return fmt::format("dsrt, {} rank{} x {} thread{}", ranks, ranks == 1 ? "" : "s", threads, threads == 1 ? "" : "s");
}

}  // namespace

Plot decode_plot(const std::vector<nlohmann::json>& runs) {
  Plot p;
  p.title = "Decode throughput against batch size";
  p.x_label = "batch size (sequences per step)";
  p.y_label = "output tokens/s (best run)";
  p.log2_x = true;
  for (const nlohmann::json& j : runs) {
    PlotSeries s{run_label(j), {}, false}, roof{"", {}, true};
    for (const auto& d : j.at("decode")) {
      s.points.emplace_back(d.at("batch").get<double>(), d.at("tokens_per_s").get<double>());
      if (d.contains("roofline_tokens_per_s"))
        roof.points.emplace_back(d.at("batch").get<double>(), d.at("roofline_tokens_per_s").get<double>());
    }
    p.series.push_back(std::move(s));
    if (!roof.points.empty()) {
      roof.name = fmt::format("roofline ({:.1f} GB/s)", j.at("roofline").value("read_bandwidth_gb_per_s", 0.0));
      p.series.push_back(std::move(roof));
    }
  }
  return p;
}

Plot ranks_plot(const std::vector<nlohmann::json>& runs) {
  Plot p;
  p.title = "Throughput against the number of ranks";
  p.x_label = "ranks";
  p.y_label = "tokens/s (best run)";
  std::set<int64_t> seen;
  std::map<int64_t, PlotSeries> by_batch;
  PlotSeries prefill{"prefill", {}, true};
  for (const nlohmann::json& j : runs) {
    const int64_t ranks = j.at("ranks").get<int64_t>();
    if (!seen.insert(ranks).second)
      throw Error(fmt::format("--plot-ranks: two runs with {} rank{}; give one file per rank count", ranks,
                              ranks == 1 ? "" : "s"));
    prefill.points.emplace_back(static_cast<double>(ranks), j.at("prefill_tokens_per_s").get<double>());
    for (const auto& d : j.at("decode")) {
      const int64_t b = d.at("batch").get<int64_t>();
      PlotSeries& s = by_batch[b];
      s.name = fmt::format("decode, batch {}", b);
      s.points.emplace_back(static_cast<double>(ranks), d.at("tokens_per_s").get<double>());
    }
  }
  for (auto& [b, s] : by_batch) p.series.push_back(std::move(s));
  p.series.push_back(std::move(prefill));
  return p;
}

}  // namespace dsrt
