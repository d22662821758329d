#include "train/config.h"

#include <gtest/gtest.h>

#include <set>

#include "nn/train_gemm.h"
#include "test_util.h"
#include "util/fs.h"

namespace embark {
namespace {

TEST(Config, TomlSetsParameters) {
  auto path = testing::WriteTemp("c.toml",
                                 "model = \"deepfm\"\nembedding_dim = 8\nmlp = [64, 32]\ndense_lr = 0.01\n"
                                 "deterministic = true\n");
  TrainConfig c;
  ASSERT_TRUE(LoadConfigToml(path, &c).ok());
  EXPECT_EQ(c.model, "deepfm");
  EXPECT_EQ(c.embedding_dim, 8);
  EXPECT_EQ(c.mlp, (std::vector<int>{64, 32}));
  EXPECT_FLOAT_EQ(c.dense_lr, 0.01f);
  EXPECT_TRUE(c.deterministic);
}

TEST(Config, ErrorsNameFileAndKey) {
  TrainConfig c;
  Status s = LoadConfigToml(testing::WriteTemp("u.toml", "embeding_dim = 8\n"), &c);
  EXPECT_NE(s.message().find("u.toml: unknown parameter 'embeding_dim'"), std::string::npos) << s.message();
  s = LoadConfigToml(testing::WriteTemp("r.toml", "embedding_dim = 0\n"), &c);
  EXPECT_NE(s.message().find("'embedding_dim': 0 is out of range [1, 1024]"), std::string::npos) << s.message();
  s = LoadConfigToml(testing::WriteTemp("m.toml", "model = \"gbdt\"\n"), &c);
  EXPECT_NE(s.message().find("'gbdt' is not one of: lr, fm"), std::string::npos) << s.message();
  s = LoadConfigToml(testing::WriteTemp("t.toml", "epochs = [\n"), &c);
  EXPECT_NE(s.message().find("t.toml:"), std::string::npos) << s.message();
  // A float in an integer list is refused, however large (6e22 does not fit
  // an integer; found by the config fuzzer).
  for (const char* text : {"mlp = [6e22]\n", "mlp = [8.0]\n", "mlp = [\"8\"]\n"}) {
    s = LoadConfigToml(testing::WriteTemp("f.toml", text), &c);
    EXPECT_NE(s.message().find("f.toml: 'mlp': expected a list of integers"), std::string::npos) << s.message();
  }
}

// dense_precision is fp32 (the default) or bf16; anything else is refused
// naming the parameter and the choices.
TEST(Config, DensePrecisionIsFp32OrBf16) {
  TrainConfig c;
  EXPECT_EQ(c.dense_precision, "fp32");
  ASSERT_TRUE(LoadConfigToml(testing::WriteTemp("p.toml", "dense_precision = \"bf16\"\n"), &c).ok());
  EXPECT_EQ(c.dense_precision, "bf16");
  EXPECT_EQ(ParseDensePrecision(c.dense_precision).value(), DensePrecision::kBf16);
  for (const char* bad : {"fp16", "BF16", "", "bfloat16"}) {
    Status s = LoadConfigToml(testing::WriteTemp("p.toml", std::string("dense_precision = \"") + bad + "\"\n"), &c);
    EXPECT_NE(s.message().find(std::string("p.toml: 'dense_precision': '") + bad + "' is not one of: fp32, bf16"),
              std::string::npos)
        << s.message();
    EXPECT_EQ(c.dense_precision, "bf16");  // unchanged
    auto parsed = ParseDensePrecision(bad);
    ASSERT_FALSE(parsed.ok());
    EXPECT_NE(parsed.status().message().find("dense_precision"), std::string::npos);
  }
  Status s = LoadConfigToml(testing::WriteTemp("p.toml", "dense_precision = 16\n"), &c);
  EXPECT_NE(s.message().find("'dense_precision': expected a string"), std::string::npos) << s.message();
}

// A value of another TOML type than the parameter's is refused, naming
// both: nothing is converted (1e3 epochs, 1 for true, "0.1" for 0.1).
TEST(Config, TomlValuesHaveTheParametersType) {
  const std::pair<const char*, const char*> cases[] = {
      {"epochs = 1e3\n", "'epochs': expected an integer, found a floating-point number: 1000.0"},
      {"threads = 2.0\n", "'threads': expected an integer, found a floating-point number: 2.0"},
      {"embedding_dim = \"16\"\n", "'embedding_dim': expected an integer, found a string: \"16\""},
      {"deterministic = 1\n", "'deterministic': expected true or false, found an integer: 1"},
      {"dense_lr = \"0.1\"\n", "'dense_lr': expected a number, found a string: \"0.1\""},
      {"model = 3\n", "'model': expected a string, found an integer: 3"},
      {"mlp = 8\n", "'mlp': expected a list of integers, found an integer: 8"},
      {"[model]\nname = \"fm\"\n", "'model': expected a string, found a table"},
      {"batch_size = 2025-01-01\n", "'batch_size': expected an integer, found a date or time"},
  };
  for (const auto& [text, want] : cases) {
    TrainConfig c;
    Status s = LoadConfigToml(testing::WriteTemp("ty.toml", text), &c);
    EXPECT_NE(s.message().find(std::string("ty.toml: ") + want), std::string::npos) << text << s.message();
  }
  // A float parameter takes an integer: config.toml writes 120 for 120.0.
  TrainConfig c;
  ASSERT_TRUE(LoadConfigToml(testing::WriteTemp("ok.toml", "comm_timeout = 120\ndense_lr = 1e-05\n"), &c).ok());
  EXPECT_FLOAT_EQ(c.comm_timeout, 120.0f);
}

// An int list is read whole: an empty item is a typo to report, not to skip.
TEST(Config, IntListsRefuseEmptyItems) {
  const ParamDef* mlp = FindParam("mlp");
  TrainConfig c;
  for (const char* ok : {"64,32", "[64, 32]", " 8 ", "", "[]"}) EXPECT_TRUE(mlp->set(&c, ok).ok()) << ok;
  EXPECT_TRUE(mlp->set(&c, "[64, 32]").ok());
  EXPECT_EQ(c.mlp, (std::vector<int>{64, 32}));
  for (const char* bad : {"8,,8", ",", "8,", ",8", "[8,]"}) {
    Status s = mlp->set(&c, bad);
    EXPECT_NE(s.message().find(std::string("'") + bad + "' has an empty item"), std::string::npos) << s.message();
  }
  EXPECT_NE(mlp->set(&c, "8 8").message().find("'8 8' is not an integer"), std::string::npos);
}

TEST(Config, TomlRoundTrip) {
  TrainConfig a;
  a.model = "dcnv2";
  a.top_mlp = {3, 2};
  a.sparse_lr = 0.125f;
  auto path = testing::WriteTemp("rt.toml", ConfigToToml(a));
  TrainConfig b;
  ASSERT_TRUE(LoadConfigToml(path, &b).ok());
  EXPECT_EQ(ConfigToToml(b), ConfigToToml(a));
}

TEST(Config, TomlReportsTheNamesItSets) {
  std::set<std::string> names;
  TrainConfig c;
  ASSERT_TRUE(LoadConfigToml(testing::WriteTemp("n.toml", "dense_lr = 0.01\nmlp = [8]\n"), &c, &names).ok());
  EXPECT_EQ(names, (std::set<std::string>{"dense_lr", "mlp"}));
}

TEST(Config, EveryParameterCopiesOnlyItself) {
  TrainConfig a, b;
  a.sparse_lr = 0.123456789f;  // more digits than config.toml keeps: copied exactly
  a.mlp = {7, 5};
  FindParam("sparse_lr")->copy(a, &b);
  EXPECT_EQ(b.sparse_lr, a.sparse_lr);
  EXPECT_EQ(b.mlp, TrainConfig().mlp);
  for (const auto& p : TrainParams()) {
    TrainConfig from, to;
    // A value other than the default for each parameter, then copy it alone.
    std::string v = std::string(p.type) == "bool" ? "true" : std::string(p.type) == "int list" ? "3,2" : "";
    if (std::string(p.type) == "int" || std::string(p.type) == "float") v = p.get(from) == "2" ? "3" : "2";
    if (std::string(p.type) == "size") v = "3M";
    if (std::string(p.type) == "interval") v = "42s";
    if (std::string(p.name) == "admit_probability") v = "0.5";
    if (std::string(p.type) == "string") {
      for (const char* cand : {"fm", "sgd", "cosine", "libsvm", "fp16", "none", "bf16", "softmax"})
        if (p.set(&from, cand).ok() && p.get(from) != p.get(TrainConfig())) v = cand;
      ASSERT_FALSE(v.empty()) << p.name;
    }
    ASSERT_TRUE(p.set(&from, v).ok()) << p.name << " = " << v;
    p.copy(from, &to);
    EXPECT_EQ(p.get(to), p.get(from)) << p.name;
    to = TrainConfig();
    p.copy(TrainConfig(), &to);
    EXPECT_EQ(ConfigToToml(to), ConfigToToml(TrainConfig())) << p.name;
  }
}

TEST(Config, IntervalsAreStepsOrTimes) {
  EXPECT_EQ(ParseInterval("500")->steps, 500);
  EXPECT_EQ(ParseInterval("0")->off(), true);
  EXPECT_DOUBLE_EQ(ParseInterval("250ms")->seconds, 0.25);
  EXPECT_DOUBLE_EQ(ParseInterval("10s")->seconds, 10);
  EXPECT_DOUBLE_EQ(ParseInterval("1.5m")->seconds, 90);
  EXPECT_DOUBLE_EQ(ParseInterval("2h")->seconds, 7200);
  for (const char* bad : {"", "s", "10x", "-5", "1e3", "10 s", "5.5"})
    EXPECT_FALSE(ParseInterval(bad).ok()) << bad;
  // A TOML integer is steps; a string any interval; written back quoted.
  TrainConfig c;
  ASSERT_TRUE(ParseConfigToml("delta_every = 20\nsnapshot_every = \"5m\"\n", "t.toml", &c).ok());
  EXPECT_EQ(c.delta_every.steps, 20);
  EXPECT_EQ(c.snapshot_every.seconds, 300);
  TrainConfig back;
  ASSERT_TRUE(ParseConfigToml(ConfigToToml(c), "t.toml", &back).ok());
  EXPECT_EQ(back.snapshot_every.seconds, 300);
  EXPECT_FALSE(ParseConfigToml("delta_every = 1.5\n", "t.toml", &c).ok());
}

TEST(Config, SizesTakeSuffixesAndPathsSurviveToml) {
  TrainConfig c;
  ASSERT_TRUE(FindParam("memory_budget")->set(&c, "4G").ok());
  EXPECT_EQ(c.memory_budget, int64_t{4} << 30);
  ASSERT_TRUE(FindParam("memory_budget")->set(&c, "512m").ok());
  EXPECT_EQ(c.memory_budget, int64_t{512} << 20);
  ASSERT_TRUE(FindParam("memory_budget")->set(&c, "1000").ok());
  EXPECT_EQ(c.memory_budget, 1000);
  for (const char* bad : {"", "G", "-1", "4X", "1.5G", "99999999T"})
    EXPECT_FALSE(FindParam("memory_budget")->set(&c, bad).ok()) << bad;
  c.table_dir = "/tmp/a \"quoted\" \\dir";
  TrainConfig back;
  ASSERT_TRUE(ParseConfigToml(ConfigToToml(c), "config.toml", &back).ok());
  EXPECT_EQ(back.table_dir, c.table_dir);
  EXPECT_EQ(back.memory_budget, c.memory_budget);
  c.memory_budget = int64_t{1} << 30;
  c.table_dir.clear();
  EXPECT_FALSE(ValidateConfig(c).ok());
}

TEST(Interval, StepsTimeOrOff) {
  auto parse = [](const char* t) {
    auto r = ParseInterval(t);
    EXPECT_TRUE(r.ok()) << t << ": " << r.status().message();
    return r.ok() ? r.value() : Interval{-1, -1};
  };
  EXPECT_EQ(parse("500"), (Interval{500, 0}));
  EXPECT_EQ(parse("1"), (Interval{1, 0}));
  EXPECT_TRUE(parse("0").off());
  EXPECT_TRUE(parse("0s").off());
  EXPECT_EQ(parse("250ms"), (Interval{0, 0.25}));
  EXPECT_EQ(parse("10s"), (Interval{0, 10}));
  EXPECT_EQ(parse("5m"), (Interval{0, 300}));
  EXPECT_EQ(parse("1h"), (Interval{0, 3600}));
  EXPECT_EQ(parse("1.5h"), (Interval{0, 5400}));
  EXPECT_EQ(parse(" 30s "), (Interval{0, 30}));
  EXPECT_FALSE(parse("30s").off());
  for (const char* bad : {"", "s", "-1", "-5s", "1.5", "10x", "10 s", "1e3", "5min", "ten", "1..2s", "99999999999999"}) {
    auto r = ParseInterval(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) EXPECT_NE(r.status().message().find(std::string("'") + bad + "'"), std::string::npos) << r.status().message();
  }
  // IntervalStr writes what ParseInterval reads back.
  for (const char* t : {"0", "500", "250ms", "10s", "90s", "5m", "1h", "1.5h", "2.5s"}) {
    const Interval iv = parse(t);
    EXPECT_EQ(parse(IntervalStr(iv).c_str()), iv) << t << " -> " << IntervalStr(iv);
  }
  EXPECT_EQ(IntervalStr(parse("5m")), "5m");
  EXPECT_EQ(IntervalStr(parse("90s")), "90s");
  EXPECT_EQ(IntervalStr(parse("250ms")), "250ms");
}

TEST(Interval, CadenceCountsStepsOrTheClock) {
  using C = Cadence::Clock;
  const C::time_point t0{};
  Cadence steps({3, 0}, t0);
  std::vector<int64_t> due;
  for (int64_t s = 1; s <= 10; ++s)
    if (steps.Due(s, t0)) due.push_back(s);
  EXPECT_EQ(due, (std::vector<int64_t>{3, 6, 9}));
  Cadence off({}, t0);
  for (int64_t s = 1; s <= 10; ++s) EXPECT_FALSE(off.Due(s, t0 + std::chrono::hours(s)));
  // Every second of the clock passed in, counted from the last time it was due.
  Cadence time({0, 1.0}, t0);
  EXPECT_FALSE(time.Due(1, t0 + std::chrono::milliseconds(400)));
  EXPECT_FALSE(time.Due(2, t0 + std::chrono::milliseconds(999)));
  EXPECT_TRUE(time.Due(3, t0 + std::chrono::milliseconds(1200)));
  EXPECT_FALSE(time.Due(4, t0 + std::chrono::milliseconds(2100)));
  EXPECT_TRUE(time.Due(5, t0 + std::chrono::milliseconds(2200)));
  EXPECT_TRUE(time.Due(6, t0 + std::chrono::seconds(60)));
}

// checkpoint_every was an int of steps: config.toml files that say
// `checkpoint_every = 0` (or any integer) still load, as steps; a time is a
// string, and is written as one.
TEST(Config, CheckpointEveryTakesStepsOrTime) {
  TrainConfig c;
  ASSERT_TRUE(ParseConfigToml("checkpoint_every = 0\n", "old.toml", &c).ok());
  EXPECT_TRUE(c.checkpoint_every.off());
  ASSERT_TRUE(ParseConfigToml("checkpoint_every = 500\n", "old.toml", &c).ok());
  EXPECT_EQ(c.checkpoint_every, (Interval{500, 0}));
  ASSERT_TRUE(ParseConfigToml("checkpoint_every = \"10m\"\n", "new.toml", &c).ok());
  EXPECT_EQ(c.checkpoint_every, (Interval{0, 600}));
  ASSERT_TRUE(ParseConfigToml("checkpoint_every = \"200\"\n", "new.toml", &c).ok());
  EXPECT_EQ(c.checkpoint_every, (Interval{200, 0}));
  Status s = ParseConfigToml("checkpoint_every = 1.5\n", "f.toml", &c);
  EXPECT_NE(s.message().find("f.toml: 'checkpoint_every': expected an interval"), std::string::npos) << s.message();
  s = ParseConfigToml("checkpoint_every = \"10 minutes\"\n", "f.toml", &c);
  EXPECT_NE(s.message().find("'10 minutes' is not an interval"), std::string::npos) << s.message();
  // Steps are written as a TOML integer (as builds before the change read
  // them), a time as a string; both read back.
  c.checkpoint_every = {250, 0};
  EXPECT_NE(ConfigToToml(c).find("\ncheckpoint_every = 250\n"), std::string::npos);
  c.checkpoint_every = {0, 30};
  const std::string toml = ConfigToToml(c);
  EXPECT_NE(toml.find("\ncheckpoint_every = \"30s\"\n"), std::string::npos) << toml;
  TrainConfig back;
  ASSERT_TRUE(ParseConfigToml(toml, "config.toml", &back).ok());
  EXPECT_EQ(back.checkpoint_every, c.checkpoint_every);
  EXPECT_NE(ConfigToToml(TrainConfig()).find("\ncheckpoint_every = 0\n"), std::string::npos);
  // As a flag, and with early stopping (both write --out): refused either way.
  ASSERT_TRUE(FindParam("checkpoint_every")->set(&c, "1h").ok());
  c.early_stop_patience = 2;
  s = ValidateConfig(c);
  EXPECT_NE(s.message().find("--checkpoint-every and --early-stop-patience"), std::string::npos) << s.message();
  ASSERT_TRUE(FindParam("checkpoint_every")->set(&c, "0").ok());
  EXPECT_TRUE(ValidateConfig(c).ok());
}

TEST(Config, FixedParametersAreTheModelsShapeAndStoredState) {
  std::set<std::string> fixed;
  for (const auto& p : TrainParams())
    if (p.on_resume == OnResume::kFixed) fixed.insert(p.name);
  EXPECT_EQ(fixed, (std::set<std::string>{"model", "embedding_dim", "bottom_mlp", "top_mlp", "mlp", "cross_layers",
                                          "init_scale", "sparse_optimizer", "first_order_optimizer", "dense_optimizer",
                                          "seed", "format", "ffm_fields", "tower_mlp", "tower_dim",
                                          "tower_normalize"}));
}

TrainConfig Saved() {
  TrainConfig c;
  c.model = "deepfm";
  c.embedding_dim = 8;
  c.mlp = {16, 8};
  c.sparse_lr = 0.01f;
  c.dense_lr = 0.02f;
  c.epochs = 1;
  c.batch_size = 512;
  c.sparse_optimizer = "adagrad";
  return c;
}

TEST(ResumeConfig, StartsFromTheCheckpointNotTheDefaults) {
  TrainConfig requested;  // defaults everywhere, nothing given explicitly
  requested.epochs = 7;   // ... and a value not given explicitly does not count
  auto r = ResolveResumeConfig(Saved(), requested, {});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(ConfigToToml(r.value()), ConfigToToml(Saved()));
}

TEST(ResumeConfig, ExplicitValuesReplaceChangeableParameters) {
  TrainConfig requested;
  requested.sparse_lr = 0.5f;
  requested.dense_lr = 0.25f;
  requested.epochs = 3;
  requested.batch_size = 64;
  requested.threads = 2;
  requested.lr_decay = "cosine";
  requested.eval_every = 10;
  requested.dense_precision = "bf16";  // it changes no stored state: checkpoints stay fp32
  auto r = ResolveResumeConfig(Saved(), requested,
                               {"sparse_lr", "dense_lr", "epochs", "batch_size", "threads", "lr_decay", "eval_every",
                                "dense_precision"});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FLOAT_EQ(r->sparse_lr, 0.5f);
  EXPECT_FLOAT_EQ(r->dense_lr, 0.25f);
  EXPECT_EQ(r->epochs, 3);
  EXPECT_EQ(r->batch_size, 64);
  EXPECT_EQ(r->threads, 2);
  EXPECT_EQ(r->lr_decay, "cosine");
  EXPECT_EQ(r->eval_every, 10);
  EXPECT_EQ(r->dense_precision, "bf16");
  // The rest is the checkpoint's.
  EXPECT_EQ(r->model, "deepfm");
  EXPECT_EQ(r->embedding_dim, 8);
  EXPECT_EQ(r->mlp, (std::vector<int>{16, 8}));
  EXPECT_EQ(r->sparse_optimizer, "adagrad");
}

TEST(ResumeConfig, FixedParametersMayBeRepeatedButNotChanged) {
  TrainConfig requested = Saved();  // the same model given again, e.g. the first run's command line
  requested.epochs = 2;
  auto same = ResolveResumeConfig(Saved(), requested, {"model", "embedding_dim", "mlp", "sparse_optimizer", "epochs"});
  ASSERT_TRUE(same.ok()) << same.status().message();
  EXPECT_EQ(same->epochs, 2);

  struct Case {
    const char* name;
    const char* value;
    const char* message;
  };
  const Case cases[] = {
      {"embedding_dim", "16", "cannot change 'embedding_dim' when resuming: the checkpoint has 8, requested 16"},
      {"model", "dlrm", "cannot change 'model' when resuming: the checkpoint has deepfm, requested dlrm"},
      {"mlp", "16,4", "cannot change 'mlp' when resuming: the checkpoint has 16,8, requested 16,4"},
      {"sparse_optimizer", "adam", "the checkpoint has adagrad, requested adam"},
      {"dense_optimizer", "sgd", "cannot change 'dense_optimizer' when resuming: the checkpoint has adam, requested sgd"},
      {"seed", "9", "cannot change 'seed'"},
      {"init_scale", "0.5", "cannot change 'init_scale'"},
      {"format", "libsvm", "the checkpoint has auto, requested libsvm"},
  };
  for (const Case& c : cases) {
    TrainConfig req = Saved();
    ASSERT_TRUE(FindParam(c.name)->set(&req, c.value).ok()) << c.name;
    auto r = ResolveResumeConfig(Saved(), req, {c.name, "epochs"});
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.message), std::string::npos) << r.status().message();
    // A different value that is not explicit is simply the checkpoint's.
    auto quiet = ResolveResumeConfig(Saved(), req, {"epochs"});
    ASSERT_TRUE(quiet.ok()) << quiet.status().message();
    EXPECT_EQ(FindParam(c.name)->get(quiet.value()), FindParam(c.name)->get(Saved()));
  }
  EXPECT_FALSE(ResolveResumeConfig(Saved(), Saved(), {"no_such_param"}).ok());
}

TEST(ResumeConfig, CheckFixedParamsComparesEveryFixedOne) {
  EXPECT_TRUE(CheckFixedParams(Saved(), Saved()).ok());
  TrainConfig changed = Saved();
  changed.dense_lr = 1;
  changed.epochs = 9;
  EXPECT_TRUE(CheckFixedParams(Saved(), changed).ok());
  changed.cross_layers = 1;
  Status s = CheckFixedParams(Saved(), changed);
  EXPECT_NE(s.message().find("cannot change 'cross_layers' when resuming: the checkpoint has 3, requested 1"),
            std::string::npos)
      << s.message();
}

// The first-order parameters' former names (before the table "wide" became
// "first_order") are read as the new ones, and never written.
TEST(Config, FormerNamesReadAsTheNewOnes) {
  ASSERT_FALSE(ParamAliases().empty());
  for (const auto& a : ParamAliases()) {
    ASSERT_NE(FindParam(a.name), nullptr) << a.name;
    EXPECT_EQ(FindParam(a.old_name), FindParam(a.name)) << a.old_name;
  }
  EXPECT_EQ(FindParam("wide_lr"), FindParam("first_order_lr"));
  EXPECT_EQ(FindParam("wide_optimizer"), FindParam("first_order_optimizer"));
  std::set<std::string> names;
  TrainConfig c;
  ASSERT_TRUE(
      LoadConfigToml(testing::WriteTemp("old.toml", "wide_optimizer = \"ftrl\"\nwide_lr = 0.05\n"), &c, &names).ok());
  EXPECT_EQ(c.first_order_optimizer, "ftrl");
  EXPECT_FLOAT_EQ(c.first_order_lr, 0.05f);
  EXPECT_EQ(names, (std::set<std::string>{"first_order_optimizer", "first_order_lr"}));
  const std::string toml = ConfigToToml(c);
  EXPECT_NE(toml.find("first_order_lr = 0.05\n"), std::string::npos) << toml;
  EXPECT_EQ(toml.find("wide"), std::string::npos) << toml;
  // A value under a bad former name is refused naming the name used.
  Status s = LoadConfigToml(testing::WriteTemp("old_bad.toml", "wide_optimizer = \"lbfgs\"\n"), &c);
  EXPECT_NE(s.message().find("old_bad.toml: 'wide_optimizer': 'lbfgs' is not one of"), std::string::npos)
      << s.message();
  // Both names of one parameter in one file: refused.
  s = LoadConfigToml(testing::WriteTemp("both.toml", "wide_lr = 0.05\nfirst_order_lr = 0.1\n"), &c);
  EXPECT_NE(s.message().find("both.toml:"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("sets 'first_order_lr' again"), std::string::npos) << s.message();
}

TEST(Config, DocsAreGeneratedFromTheDeclarations) {
  auto doc = fs::ReadFile(std::string(EMBARK_SOURCE_DIR) + "/docs/parameters.md");
  ASSERT_TRUE(doc.ok()) << doc.status().message();
  EXPECT_EQ(doc.value(), ParamsMarkdown()) << "regenerate with: build/embark params --markdown > docs/parameters.md";
}

}  // namespace
}  // namespace embark
