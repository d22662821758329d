// Hashing used for feature keys, row initialisation and checksums.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <xxhash.h>

namespace embark {

// Key of a raw feature token within a field: the same string in two fields
// gives two keys. Version 2 hashes the token and then mixes in the field;
// version 1 (checkpoints written before it; DataSpec::key_hash says which)
// seeded the token's hash with the field, which for tokens of up to 8 bytes
// only adds or XORs a near-constant into a bijection of the bytes, so ids
// collided across fields: 900 of MovieLens' 3,364 user and movie ids
// ("1".."1682" in two fields), and hex ids a few bits apart (2 pairs among
// 317K of `embark gen`'s ids).
inline uint64_t FeatureKey(uint32_t field, std::string_view token, uint64_t salt = 0, int version = 2) {
  if (version == 1) return XXH3_64bits_withSeed(token.data(), token.size(), salt * 0x9E3779B97F4A7C15ULL + field + 1);
  uint64_t f = (static_cast<uint64_t>(field) + 1) * 0xD6E8FEB86659FD93ULL;
  f ^= f >> 32;
  f *= 0xD6E8FEB86659FD93ULL;
  f ^= f >> 32;
  uint64_t h = XXH3_64bits_withSeed(token.data(), token.size(), salt) ^ f;
  // A bijective finaliser (splitmix64's), so keys differ whenever hash ^ f does.
  h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ULL;
  h = (h ^ (h >> 27)) * 0x94D049BB133111EBULL;
  return h ^ (h >> 31);
}

inline uint64_t Checksum(const void* data, size_t n) { return XXH64(data, n, 0); }

// splitmix64: a tiny, high-quality mixer used for deterministic per-key init.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Uniform float in [0, 1) from 64 random bits.
inline float UnitFloat(uint64_t bits) { return static_cast<float>(bits >> 40) * (1.0f / 16777216.0f); }

}  // namespace embark
