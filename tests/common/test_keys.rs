// Test-only RSA key pairs, generated with openssl for the ID-token tests and committed on
// purpose. Included by tests/common/jwks.rs and by the unit tests of src/identity/oidc.rs.

/// The trusted test key (PKCS#8), whose public half [`JwksServer`] serves.
pub const TEST_RSA_PRIVATE_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC9XfuIWFvCz48k\n\
9Tqwo/T3GVbHF4Nh1DCKm1njJTVPzda1I4afWG7moVImXQS60CLCgW6UV18Q+JcZ\n\
HaEO7w3h3huIR5Z4Ifn4mX+CNwLGnKDppELplxD2ZiNCAgNNbDh08Uc6+j99Gw8k\n\
9KC1Es6FG7E+GhX3Ek9C2xJyBFc+as4Xf1a7Imv2JPMlwjm+LlNcTu/9Amfh7YPL\n\
6mpRYDczrTPTnbC1URu2GsMFq2ZHdgFvx8cvfuXfqdN7wx8vvBngkMq1kspKWdVi\n\
5UOhJXp4+GFK2bUzQOamQLsldGFydh+Q9UGpr+GRQeRUqmgfJ6ScN0q2DMi35oUr\n\
xBQPZWuLAgMBAAECggEAVK/8Noy1dNkYPkIBnk+k1QEbAuysEAsyLjqtp1zTi74V\n\
YGrj4M1Ow4uvzoJZBCbi9LOnvWWZmWBjSpMqnSAhyDppe7fwPgeL4DbdhGGPtz0C\n\
5ZpVZlvt9RPWfsWhrnVQhlQFNAYIcK2yRyez22buvy6URJ6r5hPlKJQKmr0AO2QH\n\
i7p8WV4kwqKlo5/jsFIM2NBMBIFo6dC5bSWP2UBGqFurK2uH5kRgL3F+Vhuk8Vr7\n\
BJQIvD0Rwz3aHIqkmrU0Kf4nHYNyMtmjLFqgXhCewHwy4KvVxQrUIKGv023dDFFv\n\
Ksc9/lFUtIgPQtTD1FE9KwMscAsOfjydfyPoY2b48QKBgQD+XCBoeBi+WLnkwDhU\n\
6UBahmYWhG0CK8jwg6EAB8l64d7tZfF2B12Su853XI8g3/6f13Mcf/WqUrXhWnpU\n\
u7Lu1qURqDUL3bWwCH+jrQ01SY+mpdV2cu4Nb04IZMMkfz1uvU+WiOVs/x24VuMm\n\
nwv7D9rD2Uo82lrGeetsvA0cAwKBgQC+lpJv/zf8y5XV5AKGCMD2Kfyd/9nxMOjh\n\
qsTBX0sCFdljuSRBlN9CH/kKQFKU94aBk3KbHk8WQGF5Paf8sO8+xLAv+/0C9iis\n\
r5GqrGbooiDyFW6uG9R3nq5JFxjOzmR7OtnDXIp1FCOh0ihuKwQKOED3KP/OOkv5\n\
/Jw5PeGP2QKBgQDvMzXq6J3kS04t17Jh76RsPR2+KTTWKNTjkfWTML+Bxu289PR4\n\
2X5e4izMxQd4lA1AxfzjnVYqoXOXhF2sV4Ny5fn/u95+1TXqYGOgSbo1FYN45VTz\n\
+iryCW0pqZB2Pw5HmNJCr2SJ9vQ9CcC97i33ITbKnQoaZgGdysPh0orFfwKBgGYl\n\
o2SdYC+AGdVieCvIQ0tsI3W3K+MGOLrCYOPXJAeBGFtHXnQ7yxDQvBRPdzNaGuAV\n\
28Xhj7e4V8W4UvGvDvsQRfHh17AfqJstGiBkeF9Ujd3RuNleFxjpljWcSHKG0fnu\n\
B8qaLackXRic34h0S50Cm2cctUWdnxzj1AMl9F+5AoGAI9Qtx/nj5J7XMXar3NtP\n\
P/JZbYIXK0jN4yIa+4ZjpnErupIaMthmUO3jK4svVJ2QXPaWHxEFx05WgvTaD5lH\n\
c1klFR7frPkeYDy/KkMUm2iXrgJbXvGXi/14aggfmGfNO7PnrNvKX9pWrzovQU9A\n\
QmYSV3IqhSKMP6fN0cqfE8M=\n\
-----END PRIVATE KEY-----\n";
/// Its JWK modulus, base64url.
pub const TEST_RSA_N: &str = "vV37iFhbws-PJPU6sKP09xlWxxeDYdQwiptZ4yU1T83WtSOGn1hu5qFSJl0EutAiwoFulFdfEPiXGR2hDu8N4d4biEeWeCH5-Jl_gjcCxpyg6aRC6ZcQ9mYjQgIDTWw4dPFHOvo_fRsPJPSgtRLOhRuxPhoV9xJPQtsScgRXPmrOF39WuyJr9iTzJcI5vi5TXE7v_QJn4e2Dy-pqUWA3M60z052wtVEbthrDBatmR3YBb8fHL37l36nTe8MfL7wZ4JDKtZLKSlnVYuVDoSV6ePhhStm1M0DmpkC7JXRhcnYfkPVBqa_hkUHkVKpoHyeknDdKtgzIt-aFK8QUD2Vriw";
/// Its JWK exponent, base64url.
pub const TEST_RSA_E: &str = "AQAB";
/// An "attacker" key: not in the JWKS unless a test puts it there.
pub const OTHER_RSA_PRIVATE_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCdVX8bjTn6tHM+\n\
YSyRjWcirXMgNt8kkvYrm1tyUcwC3E/oovaWGltKPPirlC94HheqWi0t2jm3CASj\n\
hdn0HHnP56fO1cH3YHd706MpiLXbLtsxlaX57zDr7NITNsmGOlU8FBMAbyxiyWDa\n\
28FsIWdPoEBoXhEDqsgKLG4oOhaMwyjHaBYrsIRJzRW6ScceWzSLAtmdGISEvqUH\n\
KbdS8BtfguG72pw9ubAWlVz0KF/UMjgb49CtSJctLzOHml1g8navxTohC9S3kDOo\n\
s+srTBtZ0vBbX4RxtMVXNKfc35r/T7jC8unUv1DAukzm17shLyzTgjpHVaZk79k1\n\
1peesHgxAgMBAAECggEAAURXvHFP8vaiifFO4lIs7zDN4UfH1rvPOy0qWJqThb9f\n\
7lvnl/BY5Vll2D3efv1hC+hjfj/IYLKyFN4GUgqrqXKwXYBHqlYOyEK9SN+WtU/k\n\
iHrvxfo43uF+lJSHnWrZVl1EBOggR6BfBQwpe9UuB4xfEGgXg3vL1hcjAPRsy4/g\n\
h9XeZ9KBtHaRoZ6mTgBlNizU4G6PtRa5B8YVCw3akTDo3kbmFCO5ORS+zj9H6XYk\n\
1halGK71ayPvTfxWzSvUvUWOrpCLmI3REM4rqP2AJB1H7maab55sYcLOSzVEkNjt\n\
MbgK+BwATQWy2F0lz/enL/M/6H3G9be1E17Eh4dJgQKBgQDMaUkO4Fc44vfNufr8\n\
1c0GsWBwqGkzt/Kaq+VszKeg/S83ib9KuM1TO0KUJg1SLSTL1FYWbdvaND154bIg\n\
CIkdODh4B/tsc714NdcSaa+4HcuOl5Nq0dTp2hqRhrBCUr1RgTs4r+BfS1k26M9/\n\
znt7O5zHBoO++DJF8c31NQ3rkQKBgQDFCp2EWhCkEHpIhBzdIM2e9d6I19pMe5SP\n\
/0ozas4O6uM4HKI9fb45yIq+n0Du+ZwiUEtNrGta0T0ueB5t2SKxVmuskvN3njYd\n\
fx4bQVneRG8qnssWfCsLTPz0vP3bWMdBtr+5zTUWjj1gLdDY6ul2XRx0Ok2AWSKS\n\
YRfXgZ0yoQKBgAKzeXWq3TwxM5kSVhC1OopWGbIjZ5B5Y8lLcDKp2aU080TGmzJ/\n\
kqcA53ZRsmddlVjkK2cMeJU/j3hm1RW7RySNs6FSaa4bMWu/OmJR5zKFokT2F8qX\n\
jzqv2R4HK5kUws+q539uQ4a+1iT1mphTwCn2tbGjkmYZnYBzG4eb9d0hAoGATqq3\n\
SqD+pdHiUFNWhr5S+ZTl/LJY+FIadQcSY8bPb8s9XiioaW5rZPx40DQao45KVLTD\n\
68Xbso15JLVWSLr5C94Z7PNaerZSmqImrfEAZSnjTBvLrzVxpfhdwYQ2wb0HCGhi\n\
0VZpTJELVfvUttXK0bPI6WphiM2NbO2QrDyWOyECgYEAszfBY8mW9NpWv0lX/+e+\n\
l9Lw7FJZ4C8ijT+uuQv+R1fMs5I+fRPx89mxD2AQaFuiYmVc81mhtpP5gp/DT8XA\n\
XT1baOYOhFjOWimpe841f0pRB3fNV4NFstLUAbobFxlE0EnC17eQqD44vjTn7VKm\n\
WzZ+79VttZaR7J9NaNw6Hsk=\n\
-----END PRIVATE KEY-----\n";
/// Its JWK modulus, base64url.
pub const OTHER_RSA_N: &str = "nVV_G405-rRzPmEskY1nIq1zIDbfJJL2K5tbclHMAtxP6KL2lhpbSjz4q5QveB4XqlotLdo5twgEo4XZ9Bx5z-enztXB92B3e9OjKYi12y7bMZWl-e8w6-zSEzbJhjpVPBQTAG8sYslg2tvBbCFnT6BAaF4RA6rICixuKDoWjMMox2gWK7CESc0VuknHHls0iwLZnRiEhL6lBym3UvAbX4Lhu9qcPbmwFpVc9Chf1DI4G-PQrUiXLS8zh5pdYPJ2r8U6IQvUt5AzqLPrK0wbWdLwW1-EcbTFVzSn3N-a_0-4wvLp1L9QwLpM5te7IS8s04I6R1WmZO_ZNdaXnrB4MQ";
/// Its JWK exponent, base64url.
pub const OTHER_RSA_E: &str = "AQAB";
