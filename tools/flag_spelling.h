// Lets the command-line tools accept flags spelled with dashes, as vLLM and
// most CLIs spell them (--max-tokens), as well as absl's underscores
// (--max_tokens): absl flag names must be C identifiers.
#ifndef WEFT_TOOLS_FLAG_SPELLING_H_
#define WEFT_TOOLS_FLAG_SPELLING_H_

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace weft {

// Rewrites "--a-b[=value]" to "--a_b[=value]" in place (values untouched).
// Stops at a bare "--", after which arguments are positional. The rewritten
// strings live in `storage`, which must outlive argv's use.
inline void AcceptDashedFlags(int argc, char** argv,
                              std::vector<std::string>& storage) {
  storage.reserve(argc);
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) break;
    if (std::strncmp(argv[i], "--", 2) != 0) continue;
    std::string arg = argv[i];
    const size_t end = std::min(arg.find('='), arg.size());
    for (size_t j = 2; j < end; ++j) {
      if (arg[j] == '-') arg[j] = '_';
    }
    storage.push_back(std::move(arg));
    argv[i] = storage.back().data();
  }
}

}  // namespace weft

#endif  // WEFT_TOOLS_FLAG_SPELLING_H_
