// The parsed form of a chat template: expressions and statements as jinja2's
// parser builds them (jinja2/nodes.py), restricted to what weft interprets.
#ifndef WEFT_RUNTIME_CHAT_JINJA_AST_H_
#define WEFT_RUNTIME_CHAT_JINJA_AST_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/chat/jinja_value.h"

namespace weft::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kConst,         // constant
    kName,          // name
    kTuple,         // args: items
    kList,          // args: items
    kDict,          // pairs
    kGetAttr,       // args[0].name
    kGetItem,       // args[0][args[1]]
    kSlice,         // args[0][args[1]:args[2]:args[3]] (null: omitted)
    kCall,          // args[0](args[1:], kwargs)
    kFilter,        // args[0] | name(args[1:], kwargs); args[0] null in a
                    // filter block or `set x | f` (the block's text)
    kTest,          // args[0] is [not] name(args[1:], kwargs)
    kNot,           // not args[0]
    kNeg,           // -args[0]
    kPos,           // +args[0]
    kBinary,        // args[0] <name> args[1]: + - * / // % ** ~ and or
    kCompare,       // args[0] ops[0] args[1] ops[1] args[2] ...: == != < <= > >= in notin
    kCondition,     // args[1] if args[0] else args[2] (args[2] may be null)
    kNamespaceRef,  // name.attribute as an assignment target
  };
  Kind kind;
  int line = 0;
  std::string name;
  std::string attribute;  // kNamespaceRef
  Value constant;         // kConst
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::pair<ExprPtr, ExprPtr>> pairs;  // kDict
  std::vector<std::string> ops;                    // kCompare
  bool negated = false;                            // kTest
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kData,         // text
    kPrint,        // {{ expr }}
    kIf,           // conditions[i] → bodies[i]; an extra body is the else
    kFor,          // for target in expr [if filter]: bodies[0], else bodies[1]
    kSet,          // set target = expr
    kSetBlock,     // set target [| filters] %} bodies[0] {% endset
    kMacro,        // macro name(params) bodies[0]
    kFilterBlock,  // filter filters %} bodies[0] {% endfilter
    kWith,         // with targets = values: bodies[0]
    kBreak,
    kContinue,
    kScope,  // {% generation %}: bodies[0] rendered in place
  };
  Kind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr target;
  ExprPtr filter;  // kFor's `if`; kSetBlock / kFilterBlock's filter chain
  std::vector<ExprPtr> conditions;
  std::vector<Body> bodies;
  // kMacro: parameter names and their defaults (null: none); kWith: the
  // targets' names and values.
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;
};

struct Template {
  Body body;
};

}  // namespace weft::jinja

#endif  // WEFT_RUNTIME_CHAT_JINJA_AST_H_
