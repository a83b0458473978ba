// The tokens file and the role checks, in-process. (On the real processes:
// security_itest.)
#include "rpc/rpc_auth.h"

#include <fstream>

#include <gtest/gtest.h>

#include "cluster/temp_dir.h"

namespace pact {
namespace {

std::string WriteFile(const TempDir& dir, const std::string& text) {
  std::string path = dir.File("tokens");
  std::ofstream(path) << text;
  return path;
}

TEST(TokenTableTest, ReadsRolesAndTokensAndIgnoresComments) {
  TempDir dir;
  auto tokens = TokenTable::Load(WriteFile(dir,
                                           "# development tokens\n"
                                           "application 0123456789abcdef  # the app\n"
                                           "\n"
                                           "operator    fedcba9876543210\n"));
  ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
  EXPECT_EQ(tokens->TokenOf(Role::kApplication), "0123456789abcdef");
  EXPECT_EQ(tokens->TokenOf(Role::kCoordinator), "");
  EXPECT_TRUE(tokens->RolesOf("0123456789abcdef").Has(Role::kApplication));
  EXPECT_FALSE(tokens->RolesOf("0123456789abcdef").Has(Role::kOperator));
  EXPECT_TRUE(tokens->RolesOf("0123456789abcdeF").empty());  // exact, case and all
  EXPECT_TRUE(tokens->RolesOf("0123456789abcde").empty());   // no prefix
  EXPECT_TRUE(tokens->RolesOf("").empty());
}

TEST(TokenTableTest, RefusesWhatItCannotTrust) {
  TempDir dir;
  struct Case {
    const char* text;
    const char* message;
  } cases[] = {
      {"application short\n", "at least 16 characters"},
      {"admin 0123456789abcdef\n", "unknown role 'admin'"},
      {"application\n", "expected '<role> <token>'"},
      {"application 0123456789abcdef extra\n", "expected '<role> <token>'"},
      {"# nothing\n", "holds no tokens"},
  };
  for (const Case& c : cases) {
    auto tokens = TokenTable::Load(WriteFile(dir, c.text));
    EXPECT_EQ(tokens.status().code(), StatusCode::kInvalidArgument) << c.text;
    EXPECT_NE(tokens.status().message().find(c.message), std::string::npos)
        << c.text << ": " << tokens.status().ToString();
  }
  EXPECT_FALSE(TokenTable::Load(dir.File("missing")).ok());
}

TEST(AuthorizeTest, CallerWithoutATokenIsUnauthenticatedAndWithTheWrongRoleDenied) {
  TempDir dir;
  auto tokens = TokenTable::Load(WriteFile(dir, "application 0123456789abcdef\n"));
  ASSERT_TRUE(tokens.ok());
  ServerSecurity security;
  security.tokens = *tokens;
  CallerConnection connection;
  connection.security = &security;
  CallerScope scope(&connection);

  EXPECT_EQ(Authorize(Role::kApplication, "beginTxn").code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(AuthenticateConnection("wrong-but-long-enough").code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(Authorize(Role::kApplication, "beginTxn").code(), StatusCode::kUnauthenticated);
  ASSERT_TRUE(AuthenticateConnection("0123456789abcdef").ok());
  EXPECT_TRUE(Authorize(Role::kApplication, "beginTxn").ok());
  Status denied = Authorize(Role::kOperator, "resolve");
  EXPECT_EQ(denied.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(denied.message().find("resolve needs the role operator"), std::string::npos)
      << denied.ToString();
  // A wrong token later takes the roles away again.
  EXPECT_FALSE(AuthenticateConnection("wrong-but-long-enough").ok());
  EXPECT_EQ(Authorize(Role::kApplication, "beginTxn").code(), StatusCode::kUnauthenticated);
}

TEST(AuthorizeTest, OpenServerGrantsEveryRoleAndScopesEnd) {
  TempDir dir;
  ServerSecurity open;
  CallerConnection connection;
  connection.security = &open;
  {
    CallerScope scope(&connection);
    EXPECT_TRUE(Authorize(Role::kOperator, "resolve").ok());
    EXPECT_TRUE(AuthorizeAs(Role::kCoordinator, "c1", "prepare").ok());  // no names without TLS
  }
  ServerSecurity tokens_only;
  auto tokens = TokenTable::Load(WriteFile(dir, "operator 0123456789abcdef\n"));
  ASSERT_TRUE(tokens.ok());
  tokens_only.tokens = *tokens;
  CallerConnection stranger;
  stranger.security = &tokens_only;
  CallerScope scope(&stranger);
  EXPECT_EQ(Authorize(Role::kOperator, "resolve").code(), StatusCode::kUnauthenticated);
}

TEST(RolesTest, NamesAndSets) {
  Roles roles = Roles(Role::kOperator) | Role::kApplication;
  EXPECT_EQ(roles.ToString(), "application, operator");
  EXPECT_TRUE(roles.Intersects(Role::kOperator));
  EXPECT_FALSE(roles.Intersects(Role::kCoordinator));
  EXPECT_EQ(Roles::All().ToString(), "application, coordinator, participant, operator");
  EXPECT_EQ(*ParseRole("participant"), Role::kParticipant);
  EXPECT_FALSE(ParseRole("Participant").ok());
}

}  // namespace
}  // namespace pact
