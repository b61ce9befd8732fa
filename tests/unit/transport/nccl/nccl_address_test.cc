#include "transport/nccl/nccl_address.h"

#include <string>

#include "gtest/gtest.h"

namespace yard::transport {
namespace {

TEST(NcclAddressTest, RoundTripsIpv4HostnameAndIpv6) {
  for (const NcclAddress& address :
       {NcclAddress{"10.0.0.7", 40123, 3}, NcclAddress{"gpu-node-12.cluster.local", 1, 0},
        NcclAddress{"fe80::1", 65535, kMaxNcclDevice}}) {
    const std::string text = EncodeNcclAddress(address);
    absl::StatusOr<NcclAddress> decoded = DecodeNcclAddress(text);
    ASSERT_TRUE(decoded.ok()) << text << ": " << decoded.status();
    EXPECT_EQ(*decoded, address) << text;
  }
}

TEST(NcclAddressTest, EncodesTheDocumentedForm) {
  EXPECT_EQ(EncodeNcclAddress({"10.0.0.7", 40123, 3}), "nccl:10.0.0.7:40123/3");
  EXPECT_EQ(EncodeNcclAddress({"::1", 80, 0}), "nccl:[::1]:80/0");
}

TEST(NcclAddressTest, MalformedIsInvalidArgument) {
  const std::string bad[] = {
      "",
      "ucx:10.0.0.1:1/0",                         // another transport's prefix
      "nccl:",                                    // nothing after the prefix
      "nccl:10.0.0.1:1",                          // no device
      "nccl:10.0.0.1/0",                          // no port
      "nccl:10.0.0.1:0/0",                        // port 0
      "nccl:10.0.0.1:65536/0",                    // port too large
      "nccl:10.0.0.1:-1/0",                       // signed port
      "nccl:10.0.0.1:+80/0",                      // signed port
      "nccl:10.0.0.1:80/",                        // empty device
      "nccl:10.0.0.1:80/1024",                    // device out of range
      "nccl:10.0.0.1:80/x",                       // device not decimal
      "nccl:10.0.0.1:80/00001",                   // too many digits
      "nccl::80/0",                               // empty host
      "nccl:host_name:80/0",                      // '_' not allowed
      "nccl:a b:80/0",                            // space
      "nccl:fe80::1:80/0",                        // unbracketed IPv6
      "nccl:[fe80::1:80/0",                       // unclosed bracket
      "nccl:[]:80/0",                             // empty brackets
      "nccl:[zz::1]:80/0",                        // not hex
      "nccl:[1.2.3.4]:80/0",                      // brackets without a colon inside
      std::string("nccl:10.0.0.1\0:80/0", 19),    // embedded NUL
      "nccl:" + std::string(300, 'a') + ":80/0",  // host too long
  };
  for (const std::string& address : bad) {
    absl::StatusOr<NcclAddress> decoded = DecodeNcclAddress(address);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument)
        << "\"" << address << "\" decoded as " << (decoded.ok() ? decoded->host : "");
  }
}

TEST(NcclAddressTest, EveryTruncationOfAValidAddressIsRejectedOrValid) {
  // A truncated address must never crash; those that still parse must re-encode to
  // themselves (no silent reinterpretation).
  const std::string full = "nccl:[fe80::1]:40123/12";
  for (size_t n = 0; n < full.size(); ++n) {
    const std::string prefix = full.substr(0, n);
    absl::StatusOr<NcclAddress> decoded = DecodeNcclAddress(prefix);
    if (decoded.ok()) {
      EXPECT_EQ(EncodeNcclAddress(*decoded), prefix);
    } else {
      EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument) << prefix;
    }
  }
}

}  // namespace
}  // namespace yard::transport
