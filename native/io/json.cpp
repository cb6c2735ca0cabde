#include "io/json.h"

#include <cerrno>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace st2v::io {

struct JsonParser {
    const char* b;
    const char* p;
    const char* e;
    int depth = 0;

    [[noreturn]] void fail(const char* what) const {
        ST2V_THROW(Code::kFormat, "invalid JSON: %s at offset %zu", what, static_cast<size_t>(p - b));
    }
    void ws() {
        while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) ++p;
    }
    void expect_lit(const char* lit) {
        size_t n = std::strlen(lit);
        if (static_cast<size_t>(e - p) < n || std::memcmp(p, lit, n) != 0) fail("unexpected token");
        p += n;
    }
    static void put_utf8(std::string& s, uint32_t cp) {
        if (cp < 0x80) {
            s.push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
            s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
            s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
            s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
            s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
            s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
            s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
            s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
    }
    uint32_t hex4() {
        if (e - p < 4) fail("truncated \\u escape");
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i) {
            char c = *p++;
            v <<= 4;
            if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
            else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
            else fail("bad hex digit in \\u escape");
        }
        return v;
    }
    std::string string() {
        // at '"'
        ++p;
        std::string s;
        for (;;) {
            if (p >= e) fail("unterminated string");
            unsigned char c = static_cast<unsigned char>(*p);
            if (c == '"') { ++p; return s; }
            if (c < 0x20) fail("control character in string");
            if (c != '\\') {
                // Copy a run of plain bytes at once.
                const char* q = p;
                while (q < e && *q != '"' && *q != '\\' && static_cast<unsigned char>(*q) >= 0x20) ++q;
                s.append(p, q);
                p = q;
                continue;
            }
            ++p;
            if (p >= e) fail("unterminated escape");
            char x = *p++;
            switch (x) {
                case '"': s.push_back('"'); break;
                case '\\': s.push_back('\\'); break;
                case '/': s.push_back('/'); break;
                case 'b': s.push_back('\b'); break;
                case 'f': s.push_back('\f'); break;
                case 'n': s.push_back('\n'); break;
                case 'r': s.push_back('\r'); break;
                case 't': s.push_back('\t'); break;
                case 'u': {
                    uint32_t cp = hex4();
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        if (e - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                            p += 2;
                            uint32_t lo = hex4();
                            if (lo >= 0xDC00 && lo <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                            else { put_utf8(s, 0xFFFD); cp = lo; }
                        } else {
                            cp = 0xFFFD;  // lone high surrogate
                        }
                    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                        cp = 0xFFFD;  // lone low surrogate
                    }
                    put_utf8(s, cp);
                    break;
                }
                default: fail("bad escape");
            }
        }
    }
    void number(Json& j) {
        const char* s = p;
        bool integer = true;
        if (p < e && *p == '-') ++p;
        if (p >= e) fail("bad number");
        if (*p == '0') {
            ++p;
        } else if (*p >= '1' && *p <= '9') {
            while (p < e && *p >= '0' && *p <= '9') ++p;
        } else {
            fail("bad number");
        }
        if (p < e && *p == '.') {
            integer = false;
            ++p;
            if (p >= e || !(*p >= '0' && *p <= '9')) fail("bad fraction");
            while (p < e && *p >= '0' && *p <= '9') ++p;
        }
        if (p < e && (*p == 'e' || *p == 'E')) {
            integer = false;
            ++p;
            if (p < e && (*p == '+' || *p == '-')) ++p;
            if (p >= e || !(*p >= '0' && *p <= '9')) fail("bad exponent");
            while (p < e && *p >= '0' && *p <= '9') ++p;
        }
        std::string lit(s, p);
        j.type_ = Json::Type::Number;
        j.num_ = std::strtod(lit.c_str(), nullptr);
        if (integer) {
            errno = 0;
            char* end = nullptr;
            long long v = std::strtoll(lit.c_str(), &end, 10);
            if (errno == 0 && end && *end == '\0') {
                j.is_int_ = true;
                j.int_ = v;
            }
        }
    }
    void value(Json& j) {
        ws();
        if (p >= e) fail("unexpected end");
        char c = *p;
        if (c == '{') {
            if (++depth > 512) fail("nesting too deep");
            ++p;
            j.type_ = Json::Type::Object;
            ws();
            if (p < e && *p == '}') { ++p; --depth; return; }
            for (;;) {
                ws();
                if (p >= e || *p != '"') fail("expected a member name");
                std::string k = string();
                ws();
                if (p >= e || *p != ':') fail("expected ':'");
                ++p;
                j.obj_.emplace_back(std::move(k), Json());
                value(j.obj_.back().second);
                ws();
                if (p < e && *p == ',') { ++p; continue; }
                if (p < e && *p == '}') { ++p; break; }
                fail("expected ',' or '}'");
            }
            --depth;
        } else if (c == '[') {
            if (++depth > 512) fail("nesting too deep");
            ++p;
            j.type_ = Json::Type::Array;
            ws();
            if (p < e && *p == ']') { ++p; --depth; return; }
            for (;;) {
                j.arr_.emplace_back();
                value(j.arr_.back());
                ws();
                if (p < e && *p == ',') { ++p; continue; }
                if (p < e && *p == ']') { ++p; break; }
                fail("expected ',' or ']'");
            }
            --depth;
        } else if (c == '"') {
            j.type_ = Json::Type::String;
            j.str_ = string();
        } else if (c == 't') {
            expect_lit("true");
            j.type_ = Json::Type::Bool;
            j.b_ = true;
        } else if (c == 'f') {
            expect_lit("false");
            j.type_ = Json::Type::Bool;
            j.b_ = false;
        } else if (c == 'n') {
            expect_lit("null");
            j.type_ = Json::Type::Null;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            number(j);
        } else {
            fail("unexpected character");
        }
    }
};

Json Json::parse(const char* data, size_t size) {
    JsonParser ps{data, data, data + size};
    // A UTF-8 byte order mark is tolerated at the start.
    if (size >= 3 && static_cast<unsigned char>(data[0]) == 0xEF && static_cast<unsigned char>(data[1]) == 0xBB &&
        static_cast<unsigned char>(data[2]) == 0xBF)
        ps.p += 3;
    Json j;
    ps.value(j);
    ps.ws();
    if (ps.p != ps.e) ps.fail("trailing characters after the value");
    return j;
}

const Json* Json::find(const std::string& key) const {
    if (type_ != Type::Object) return nullptr;
    for (const auto& kv : obj_)
        if (kv.first == key) return &kv.second;
    return nullptr;
}

const char* Json::type_name() const {
    switch (type_) {
        case Type::Null: return "null";
        case Type::Bool: return "bool";
        case Type::Number: return "number";
        case Type::String: return "string";
        case Type::Array: return "array";
        case Type::Object: return "object";
    }
    return "?";
}

std::string json_quote(const std::string& s) {
    std::string o;
    o.reserve(s.size() + 2);
    o.push_back('"');
    for (unsigned char c : s) {
        switch (c) {
            case '"': o += "\\\""; break;
            case '\\': o += "\\\\"; break;
            case '\n': o += "\\n"; break;
            case '\r': o += "\\r"; break;
            case '\t': o += "\\t"; break;
            case '\b': o += "\\b"; break;
            case '\f': o += "\\f"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    o += buf;
                } else {
                    o.push_back(static_cast<char>(c));
                }
        }
    }
    o.push_back('"');
    return o;
}

}  // namespace st2v::io
