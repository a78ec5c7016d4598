package wechat

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// UserInfo is the plain form of wx.getUserInfo's encryptedData.
type UserInfo struct {
	OpenID    string `json:"openId"`
	UnionID   string `json:"unionId"`
	NickName  string `json:"nickName"`
	Gender    int64  `json:"gender"` // 0 unknown, 1 male, 2 female
	City      string `json:"city"`
	Province  string `json:"province"`
	Country   string `json:"country"`
	AvatarURL string `json:"avatarUrl"`
	Language  string `json:"language"`
	Watermark struct {
		AppID     string `json:"appid"`
		Timestamp int64  `json:"timestamp"`
	} `json:"watermark"`
}

// Decoder errors. Each is a client's fault (422), never the server's.
var (
	ErrBadEncoding  = errors.New("not valid base64")
	ErrBadLength    = errors.New("wrong length")
	ErrBadPadding   = errors.New("does not decrypt under the session key (bad padding): it may predate the last wx.login")
	ErrBadPlaintext = errors.New("decrypts to something that is not WeChat user data")
	ErrWatermark    = errors.New("watermark appid is not this mini-program's")
)

// DecodeError names the input field a decoder error is about.
type DecodeError struct {
	Field string // "encryptedData" or "iv"
	Err   error
}

func (e *DecodeError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// maxEncryptedData bounds the base64 ciphertext; user data is well under 2 KiB.
const maxEncryptedData = 16 << 10

// DecryptUserInfo decrypts encryptedData (base64, AES-128-CBC, PKCS#7)
// with the session key and IV (both base64 of 16 bytes) and checks that
// the watermark names appID.
func DecryptUserInfo(sessionKey, encryptedData, iv, appID string) (*UserInfo, error) {
	plain, err := Decrypt(sessionKey, encryptedData, iv)
	if err != nil {
		return nil, err
	}
	var info UserInfo
	dec := json.NewDecoder(bytes.NewReader(plain))
	if err := dec.Decode(&info); err != nil || dec.More() {
		return nil, &DecodeError{Field: "encryptedData", Err: ErrBadPlaintext}
	}
	if info.Watermark.AppID != appID {
		return nil, &DecodeError{Field: "encryptedData", Err: ErrWatermark}
	}
	if info.Gender < 0 || info.Gender > 2 {
		info.Gender = 0
	}
	return &info, nil
}

// Decrypt is WeChat's encrypted-data scheme without the JSON step.
func Decrypt(sessionKey, encryptedData, iv string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(sessionKey)
	if err != nil || len(key) != aes.BlockSize {
		// The session key is ours, not the caller's: it was stored from
		// jscode2session. A bad one means the data cannot be read.
		return nil, &DecodeError{Field: "encryptedData", Err: fmt.Errorf("session key is unusable")}
	}
	if len(encryptedData) > maxEncryptedData {
		return nil, &DecodeError{Field: "encryptedData", Err: ErrBadLength}
	}
	ivb, err := decodeB64(iv)
	if err != nil {
		return nil, &DecodeError{Field: "iv", Err: ErrBadEncoding}
	}
	if len(ivb) != aes.BlockSize {
		return nil, &DecodeError{Field: "iv", Err: ErrBadLength}
	}
	ct, err := decodeB64(encryptedData)
	if err != nil {
		return nil, &DecodeError{Field: "encryptedData", Err: ErrBadEncoding}
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, &DecodeError{Field: "encryptedData", Err: ErrBadLength}
	}
	block, _ := aes.NewCipher(key)
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, ivb).CryptBlocks(plain, ct)
	plain, ok := unpad(plain)
	if !ok {
		return nil, &DecodeError{Field: "encryptedData", Err: ErrBadPadding}
	}
	return plain, nil
}

// decodeB64 takes standard base64; mini-programs send it as is, and a
// form-encoded body may have turned '+' into ' '.
func decodeB64(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.ReplaceAll(strings.TrimSpace(s), " ", "+"))
}

// unpad strips PKCS#7 padding (1..16 bytes, every one equal to the count).
func unpad(b []byte) ([]byte, bool) {
	if len(b) == 0 {
		return nil, false
	}
	n := int(b[len(b)-1])
	if n == 0 || n > aes.BlockSize || n > len(b) {
		return nil, false
	}
	for _, c := range b[len(b)-n:] {
		if int(c) != n {
			return nil, false
		}
	}
	return b[:len(b)-n], true
}

// Pad adds PKCS#7 padding to a multiple of the AES block size.
func Pad(b []byte) []byte {
	n := aes.BlockSize - len(b)%aes.BlockSize
	return append(append([]byte(nil), b...), bytes.Repeat([]byte{byte(n)}, n)...)
}

// Encrypt is the inverse of Decrypt (base64 in and out), as WeChat does it;
// the fake and the tests use it.
func Encrypt(sessionKey string, plain []byte, iv []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(sessionKey)
	if err != nil || len(key) != aes.BlockSize || len(iv) != aes.BlockSize {
		return "", errors.New("wechat: session key and iv must be 16 bytes")
	}
	block, _ := aes.NewCipher(key)
	padded := Pad(plain)
	ct := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, padded)
	return base64.StdEncoding.EncodeToString(ct), nil
}

// Sealer keeps session keys encrypted at rest: AES-256-GCM under a key
// derived by HKDF-SHA256 from the tenant's app secret (salt: the app id),
// with the user id as additional data, so a sealed key copied onto another
// user does not open. Changing the app secret makes stored keys unreadable;
// the next WeChat login stores a fresh one.
type Sealer struct{ aead cipher.AEAD }

// NewSealer derives the sealing key.
func NewSealer(appSecret, appID string) (*Sealer, error) {
	if appSecret == "" {
		return nil, errors.New("wechat: empty app secret")
	}
	key, err := hkdf.Key(sha256.New, []byte(appSecret), []byte(appID), "userve wechat session keys v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts a session key for user.
func (s *Sealer) Seal(user int64, sessionKey string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, []byte(sessionKey), aad(user)), nil
}

// ErrSealed means a sealed session key does not open (another secret, or
// not this user's).
var ErrSealed = errors.New("wechat: stored session key does not open")

// Open decrypts what Seal made for user.
func (s *Sealer) Open(user int64, sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return "", ErrSealed
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], aad(user))
	if err != nil {
		return "", ErrSealed
	}
	return string(plain), nil
}

func aad(user int64) []byte { return fmt.Appendf(nil, "user:%d", user) }
