// The reasoning / tool-call parser and the stop-sequence matcher: one-shot results, and the same
// results whatever pieces the text arrives in, with no tag ever split across outputs.
#include <random>

#include <gtest/gtest.h>

#include "runtime/reasoning.h"
#include "runtime/tokenizer.h"
#include "unit/test_util.h"

namespace dsrt {
namespace {

const ReasoningSyntax kSyn = ReasoningSyntax::deepseek();
const std::string kCallsBegin = "<｜tool▁calls▁begin｜>", kCallsEnd = "<｜tool▁calls▁end｜>";
const std::string kCallBegin = "<｜tool▁call▁begin｜>", kCallEnd = "<｜tool▁call▁end｜>", kSep = "<｜tool▁sep｜>";

std::string call(const std::string& name, const std::string& args) {
  return kCallBegin + "function" + kSep + name + "\n```json\n" + args + "\n```" + kCallEnd;
}

// Feeds `text` in pieces cut at `cuts` (sorted byte offsets) and gathers every output.
ReasoningDelta feed(const std::string& text, const std::vector<size_t>& cuts, bool inside,
                    std::vector<ReasoningDelta>* pieces = nullptr) {
  ReasoningParser p(kSyn, inside);
  ReasoningDelta all;
  size_t at = 0;
  auto take = [&](ReasoningDelta d) {
    if (pieces) pieces->push_back(d);
    all.append(std::move(d));
  };
  for (size_t c : cuts) {
    take(p.push(std::string_view(text).substr(at, c - at)));
    at = c;
  }
  take(p.push(std::string_view(text).substr(at)));
  take(p.finish());
  return all;
}

void expect_same(const ReasoningDelta& a, const ReasoningDelta& b, const std::string& what) {
  EXPECT_EQ(a.reasoning, b.reasoning) << what;
  EXPECT_EQ(a.content, b.content) << what;
  ASSERT_EQ(a.tool_calls.size(), b.tool_calls.size()) << what;
  for (size_t i = 0; i < a.tool_calls.size(); ++i) {
    EXPECT_EQ(a.tool_calls[i].name, b.tool_calls[i].name) << what;
    EXPECT_EQ(a.tool_calls[i].arguments, b.tool_calls[i].arguments) << what;
    EXPECT_EQ(a.tool_calls[i].index, b.tool_calls[i].index) << what;
  }
}

// Every single cut point and byte-by-byte feeding give the one-shot result; no output piece
// contains part of a tag.
void expect_split_invariant(const std::string& text, bool inside) {
  const ReasoningDelta whole = parse_reasoning(text, kSyn, inside);
  for (size_t c = 0; c <= text.size(); ++c) expect_same(feed(text, {c}, inside), whole, "cut at " + std::to_string(c));
  std::vector<size_t> bytes;
  for (size_t c = 1; c < text.size(); ++c) bytes.push_back(c);
  std::vector<ReasoningDelta> pieces;
  expect_same(feed(text, bytes, inside, &pieces), whole, "byte by byte");
  for (const ReasoningDelta& d : pieces)
    for (const std::string* s : {&d.reasoning, &d.content})
      for (const std::string& tag : {kSyn.think_end, kCallsBegin})
        if (whole.content.find(tag) == std::string::npos && whole.reasoning.find(tag) == std::string::npos) {
          EXPECT_EQ(partial_suffix(*s, tag), 0u) << "'" << *s << "' ends with part of " << tag;
        }
}

TEST(Reasoning, PromptOpenedThinking) {
  ReasoningDelta d = parse_reasoning("Let me think.\nOK.</think>\n\nThe answer is 4.", kSyn, true);
  EXPECT_EQ(d.reasoning, "Let me think.\nOK.");
  EXPECT_EQ(d.content, "The answer is 4.");
  expect_split_invariant("Let me think.\nOK.</think>\n\nThe answer is 4.", true);
}

TEST(Reasoning, ModelOpensThinking) {
  ReasoningDelta d = parse_reasoning("\n<think>\nhmm</think>answer", kSyn, false);
  EXPECT_EQ(d.reasoning, "\nhmm");
  EXPECT_EQ(d.content, "answer");
  expect_split_invariant("\n<think>\nhmm</think>answer", false);
}

TEST(Reasoning, NoThinking) {
  ReasoningDelta d = parse_reasoning("Hello <think> world</think>", kSyn, false);
  EXPECT_EQ(d.reasoning, "");
  EXPECT_EQ(d.content, "Hello <think> world</think>");
  expect_split_invariant("Hello <think> world</think>", false);
  EXPECT_EQ(parse_reasoning("  \n", kSyn, false).content, "  \n");
  EXPECT_EQ(parse_reasoning("<thin", kSyn, false).content, "<thin");
}

TEST(Reasoning, HoldsBackPartialTags) {
  ReasoningParser p(kSyn, true);
  ReasoningDelta a = p.push("abc</th");
  EXPECT_EQ(a.reasoning, "abc");
  EXPECT_TRUE(a.content.empty());
  ReasoningDelta b = p.push("ink>x");
  EXPECT_EQ(b.reasoning, "");
  EXPECT_EQ(b.content, "x");
  EXPECT_FALSE(p.in_reasoning());

  ReasoningParser q(kSyn, true);
  EXPECT_EQ(q.push("a</thi").reasoning, "a");
  EXPECT_EQ(q.push("x").reasoning, "</thix");  // not the tag after all
  ReasoningDelta end = q.push("</");
  EXPECT_TRUE(end.empty());
  EXPECT_EQ(q.finish().reasoning, "</");  // unterminated reasoning stays reasoning
}

TEST(Reasoning, UnterminatedThinkingIsReasoning) {
  ReasoningDelta d = parse_reasoning("still thinking", kSyn, true);
  EXPECT_EQ(d.reasoning, "still thinking");
  EXPECT_EQ(d.content, "");
}

TEST(Reasoning, ToolCalls) {
  const std::string text = "I'll check." + kCallsBegin + call("get_weather", "{\"city\": \"Paris\"}") + "\n" +
                           call("get_time", "{}") + kCallsEnd;
  ReasoningDelta d = parse_reasoning(text, kSyn, false);
  EXPECT_EQ(d.content, "I'll check.");
  ASSERT_EQ(d.tool_calls.size(), 2u);
  EXPECT_EQ(d.tool_calls[0].type, "function");
  EXPECT_EQ(d.tool_calls[0].name, "get_weather");
  EXPECT_EQ(d.tool_calls[0].arguments, "{\"city\": \"Paris\"}");
  EXPECT_EQ(d.tool_calls[1].name, "get_time");
  EXPECT_EQ(d.tool_calls[1].index, 1);
  expect_split_invariant(text, false);
  // After reasoning, too.
  ReasoningDelta r = parse_reasoning("plan</think>\n\n" + kCallsBegin + call("f", "{\"a\":1}") + kCallsEnd, kSyn, true);
  EXPECT_EQ(r.reasoning, "plan");
  EXPECT_EQ(r.content, "");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].arguments, "{\"a\":1}");
}

TEST(Reasoning, MalformedToolCallsStayContent) {
  // No separator: the call is given back as text.
  const std::string bad = kCallsBegin + kCallBegin + "garbage" + kCallEnd + kCallsEnd;
  ReasoningDelta d = parse_reasoning(bad, kSyn, false);
  EXPECT_TRUE(d.tool_calls.empty());
  EXPECT_EQ(d.content, kCallsBegin + kCallBegin + "garbage" + kCallEnd);
  expect_split_invariant(bad, false);
  // Text that is not the grammar after the block marker.
  ReasoningDelta e = parse_reasoning("a" + kCallsBegin + "oops", kSyn, false);
  EXPECT_EQ(e.content, "a" + kCallsBegin + "oops");
  // Truncated call (max_tokens): content, nothing lost.
  const std::string cut = kCallsBegin + kCallBegin + "function" + kSep + "f\n```json\n{\"a\":";
  EXPECT_EQ(parse_reasoning(cut, kSyn, false).content, cut);
  expect_split_invariant(cut, false);
  // One good call then a truncated one.
  const std::string half = kCallsBegin + call("f", "{}") + kCallBegin + "function";
  ReasoningDelta h = parse_reasoning(half, kSyn, false);
  ASSERT_EQ(h.tool_calls.size(), 1u);
  EXPECT_EQ(h.content, kCallBegin + "function");
}

TEST(Reasoning, WithoutToolSyntaxMarkersAreText) {
  ReasoningSyntax plain;  // think tags only
  const std::string text = kCallsBegin + call("f", "{}") + kCallsEnd;
  ReasoningDelta d = parse_reasoning(text, plain, false);
  EXPECT_TRUE(d.tool_calls.empty());
  EXPECT_EQ(d.content, text);
}

TEST(Reasoning, SyntaxFromTokenizer) {
  Tokenizer tok = Tokenizer::from_file(test::data_dir() + "/tokenizer/tokenizer.json");
  ReasoningSyntax s = ReasoningSyntax::from_tokenizer(tok);
  EXPECT_TRUE(s.parses_tool_calls());
  EXPECT_EQ(s.calls_begin, kCallsBegin);
  EXPECT_EQ(s.call_sep, kSep);
  Tokenizer none = Tokenizer::from_json(
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": []})", "inline");
  EXPECT_FALSE(ReasoningSyntax::from_tokenizer(none).parses_tool_calls());
}

TEST(Reasoning, RandomTextSplitInvariant) {
  const std::vector<std::string> atoms = {"a", " ", "\n", "<", "/", "think", ">", "<think>", "</think>", "</th",
                                          kCallsBegin, kCallsEnd, kCallBegin, kCallEnd, kSep, "function",
                                          "```json\n", "```", "{}", "é", "的"};
  std::mt19937 rng(7);
  for (int it = 0; it < 300; ++it) {
    std::string text;
    const int n = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) text += atoms[rng() % atoms.size()];
    const bool inside = rng() % 2;
    const ReasoningDelta whole = parse_reasoning(text, kSyn, inside);
    std::vector<size_t> cuts;
    for (size_t c = 1; c < text.size(); ++c)
      if (rng() % 3 == 0) cuts.push_back(c);
    expect_same(feed(text, cuts, inside), whole, text);
    // Nothing is lost but tags and the whitespace after </think>.
    EXPECT_LE(whole.reasoning.size() + whole.content.size(), text.size());
  }
}

std::string feed_stop(StopMatcher& m, const std::string& text, size_t piece) {
  std::string out;
  for (size_t i = 0; i < text.size(); i += piece) out += m.push(text.substr(i, piece));
  return out + m.finish();
}

TEST(StopMatcher, StopsAtFirstMatch) {
  for (size_t piece : {1, 2, 3, 100}) {
    StopMatcher m({"world", "\n\n"});
    EXPECT_EQ(feed_stop(m, "Hello, world! More\n\n", piece), "Hello, ") << piece;
    EXPECT_TRUE(m.stopped());
    StopMatcher n({"world", "\n\n"});
    EXPECT_EQ(feed_stop(n, "a\n\nworld", piece), "a") << piece;
    StopMatcher none({"xyz"});
    EXPECT_EQ(feed_stop(none, "abc xy", piece), "abc xy") << piece;
    EXPECT_FALSE(none.stopped());
  }
}

TEST(StopMatcher, HoldsBackPossibleStart) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.push("abcST"), "abc");
  EXPECT_EQ(m.push("O"), "");
  EXPECT_EQ(m.push("x"), "STOx");
  EXPECT_EQ(m.push("ST"), "");
  EXPECT_EQ(m.push("OP tail"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.push("more"), "");
  EXPECT_EQ(m.finish(), "");
  StopMatcher empty({});
  EXPECT_EQ(empty.push("anything"), "anything");
}

}  // namespace
}  // namespace dsrt
