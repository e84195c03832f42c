// Tier names, parsing, auto's choice and its one-line summary.
#include <gtest/gtest.h>

#include "isolation/backend.hpp"

using namespace batman::isolation;

TEST(Tiers, NamesRoundTrip) {
  for (Tier t : kAutoOrder) {
    auto parsed = parse_tier(tier_name(t));
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, t);
  }
  auto automatic = parse_tier("auto");
  ASSERT_TRUE(automatic.has_value());
  EXPECT_FALSE(automatic->has_value());
}

TEST(Tiers, UnknownTierListsTheKnownOnes) {
  auto bad = parse_tier("docker");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("auto, namespaces, firejail, systemd or env"), std::string::npos);
}

TEST(Tiers, SummaryNamesEverySkippedTier) {
  TierChoice c{Tier::Env,
               {{Tier::Namespaces, false, "no user namespaces"},
                {Tier::Firejail, false, "not installed"},
                {Tier::Systemd, false, "systemd is not PID 1 (init is sh)"}}};
  EXPECT_EQ(c.summary(),
            "isolation: env (namespaces: no user namespaces; firejail: not installed; systemd: "
            "systemd is not PID 1 (init is sh))");
  EXPECT_EQ((TierChoice{Tier::Namespaces, {}}).summary(), "isolation: namespaces");
}

TEST(Tiers, EnvIsAlwaysAvailable) {
  EXPECT_TRUE(probe_tier(Tier::Env).available);
  auto c = choose_tier(Tier::Env);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->tier, Tier::Env);
}

TEST(Tiers, AutoTakesTheFirstAvailableAndExplainsTheRest) {
  auto c = choose_tier(std::nullopt);
  ASSERT_TRUE(c.has_value());
  std::size_t i = 0;
  for (Tier t : kAutoOrder) {
    if (t == c->tier) break;
    ASSERT_LT(i, c->skipped.size());
    EXPECT_EQ(c->skipped[i].tier, t);
    EXPECT_FALSE(c->skipped[i].reason.empty());
    ++i;
  }
  EXPECT_EQ(i, c->skipped.size());
  EXPECT_TRUE(probe_tier(c->tier).available);
}

TEST(Tiers, UnavailableNamedTierIsAnErrorWithTheReason) {
  // systemd is the tier most often missing; when it is there, this checks nothing more.
  const auto a = probe_tier(Tier::Systemd);
  auto c = choose_tier(Tier::Systemd);
  if (a.available) {
    EXPECT_TRUE(c.has_value());
  } else {
    ASSERT_FALSE(c.has_value());
    EXPECT_NE(c.error().message.find(a.reason), std::string::npos);
    EXPECT_NE(c.error().message.find("not available"), std::string::npos);
  }
}
