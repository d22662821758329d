// The model families embark knows, listed in one explicit table
// (families.cc): each name with the function that declares the family's
// tables and parts (one file per family in this folder). A new family is a
// new file and a new line in that table.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "model/family.h"
#include "util/status.h"

namespace embark {

struct Family {
  const char* name;  // the value of the `model` parameter
  const char* what;  // a line for people
  Status (*build)(FamilyBuilder* b);
};

// Every family, in the order they are listed to people.
std::span<const Family> Families();
// The family named `name`, or null.
const Family* FindFamily(std::string_view name);
// "lr, fm, ..." for messages.
std::string FamilyNames();

Status BuildLr(FamilyBuilder* b);
Status BuildFm(FamilyBuilder* b);
Status BuildDeepFm(FamilyBuilder* b);
Status BuildWdl(FamilyBuilder* b);
Status BuildDcnV2(FamilyBuilder* b);
Status BuildDlrm(FamilyBuilder* b);
Status BuildTwoTower(FamilyBuilder* b);

}  // namespace embark
