// A small, strict JSON parser (RFC 8259) for file headers and configs (safetensors headers,
// *.safetensors.index.json, model.json, config.json).
//
// - Any valid JSON parses: nested values, all escapes incl. \uXXXX surrogate pairs (decoded to UTF-8),
//   numbers in every valid form (kept as double plus an exact int64 when the literal is an integer).
// - Invalid JSON throws st2v::Error(kFormat) with the byte offset; nesting deeper than 512 is refused.
// - Objects keep their members in file order; duplicate keys are kept (callers that care check).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace st2v::io {

class Json {
  public:
    enum class Type : uint8_t { Null, Bool, Number, String, Array, Object };

    Json() = default;
    static Json parse(const char* data, size_t size);  // throws Error(kFormat, "...at offset N")
    static Json parse(const std::string& s) { return parse(s.data(), s.size()); }

    Type type() const { return type_; }
    bool is_null() const { return type_ == Type::Null; }
    bool is_bool() const { return type_ == Type::Bool; }
    bool is_number() const { return type_ == Type::Number; }
    bool is_string() const { return type_ == Type::String; }
    bool is_array() const { return type_ == Type::Array; }
    bool is_object() const { return type_ == Type::Object; }
    // True for numbers written as integers that fit an int64 exactly ("12", "-3"; not "1.0", "1e3").
    bool is_integer() const { return type_ == Type::Number && is_int_; }

    bool as_bool() const { return b_; }
    double as_double() const { return num_; }
    int64_t as_int() const { return int_; }
    const std::string& as_string() const { return str_; }
    const std::vector<Json>& items() const { return arr_; }
    const std::vector<std::pair<std::string, Json>>& members() const { return obj_; }
    // First member named key, or nullptr (also when this is not an object).
    const Json* find(const std::string& key) const;
    const char* type_name() const;

  private:
    friend struct JsonParser;
    Type type_ = Type::Null;
    bool b_ = false;
    bool is_int_ = false;
    double num_ = 0;
    int64_t int_ = 0;
    std::string str_;
    std::vector<Json> arr_;
    std::vector<std::pair<std::string, Json>> obj_;
};

// Quotes and escapes a string for JSON output.
std::string json_quote(const std::string& s);

}  // namespace st2v::io
