#include "engine/stop_strings.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace yard::engine {
namespace {

// Feeds `deltas` and returns everything streamed, plus whether it stopped.
std::pair<std::string, bool> Feed(std::vector<std::string> stops,
                                  const std::vector<std::string>& deltas, bool flush = true) {
  StopStringMatcher m(std::move(stops));
  std::string out;
  for (const std::string& d : deltas) {
    StopStringMatcher::Result r = m.Append(d);
    out += r.text;
    if (r.stopped) return {out, true};
  }
  if (flush) out += m.Flush();
  return {out, false};
}

TEST(StopStringsTest, NoStopsPassThrough) {
  StopStringMatcher m({});
  EXPECT_EQ(m.Append("abc").text, "abc");
  EXPECT_EQ(m.Append("").text, "");
  EXPECT_EQ(m.Flush(), "");
  StopStringMatcher empty({""});  // ignored
  EXPECT_EQ(empty.Append("abc").text, "abc");
}

TEST(StopStringsTest, StopInsideOneDelta) {
  EXPECT_EQ(Feed({"STOP"}, {"hello STOP world"}), std::make_pair(std::string("hello "), true));
  EXPECT_EQ(Feed({"STOP"}, {"STOP"}), std::make_pair(std::string(""), true));
}

TEST(StopStringsTest, StopSpanningDeltasIsHeldThenDropped) {
  StopStringMatcher m({"STOP"});
  EXPECT_EQ(m.Append("go S").text, "go ");  // "S" could start the stop string
  EXPECT_EQ(m.Append("T").text, "");
  StopStringMatcher::Result r = m.Append("OPped");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.Append("more").text, "");  // nothing after a stop
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopStringsTest, FalseStartIsReleased) {
  StopStringMatcher m({"STOP"});
  EXPECT_EQ(m.Append("ST").text, "");
  EXPECT_EQ(m.Append("x").text, "STx");
  EXPECT_EQ(m.Append("STO").text, "");
  EXPECT_EQ(m.Flush(), "STO");  // generation ended for another reason
}

TEST(StopStringsTest, EarliestOfSeveralWins) {
  EXPECT_EQ(Feed({"world", "lo w"}, {"hel", "lo wor", "ld"}),
            std::make_pair(std::string("hel"), true));
  // "abc" starts before "b" does.
  EXPECT_EQ(Feed({"b", "abc"}, {"xa", "bc"}), std::make_pair(std::string("x"), true));
}

TEST(StopStringsTest, OverlappingPrefixes) {
  // "aab" inside "aaab": the first 'a' is released only once it cannot start a match.
  EXPECT_EQ(Feed({"aab"}, {"a", "a", "a", "b"}), std::make_pair(std::string("a"), true));
  EXPECT_EQ(Feed({"aab"}, {"a", "a", "a", "c"}), std::make_pair(std::string("aaac"), false));
}

TEST(StopStringsTest, ConcatenationEqualsTextWhenNothingStops) {
  EXPECT_EQ(Feed({"xyz", "\n\n"}, {"a\n", "b x", "y", " z\n", "\n"}),
            std::make_pair(std::string("a\nb xy z"), true));
  EXPECT_EQ(Feed({"xyz"}, {"a", "x", "y"}), std::make_pair(std::string("axy"), false));
}

}  // namespace
}  // namespace yard::engine
