// Names and random credentials of a project: id, schema and role names, keys, owner password.
using System.Security.Cryptography;
using System.Text;

namespace DbStudio.Core.Projects;

public static class ProjectNaming
{
    private const string IdAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    public const int IdLength = 12;

    /// <summary>A short lowercase id that starts with a letter (≈ 60 bits).</summary>
    public static string NewId()
    {
        Span<char> id = stackalloc char[IdLength];
        id[0] = IdAlphabet[RandomNumberGenerator.GetInt32(26)];
        for (var i = 1; i < id.Length; i++) id[i] = IdAlphabet[RandomNumberGenerator.GetInt32(IdAlphabet.Length)];
        return new string(id);
    }

    public static bool IsValidId(string? id) =>
        id is { Length: >= 1 and <= 32 } && char.IsAsciiLetterLower(id[0]) && id.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c));

    public static string Schema(string id) => $"proj_{id}";
    public static string OwnerRole(string id) => $"proj_{id}_owner";
    public static string AnonRole(string id) => $"proj_{id}_anon";
    public static string UserRole(string id) => $"proj_{id}_user";
    /// <summary>End users whose role is admin: same verbs as users, without own-row filters. A role of its own
    /// (rather than an OR in the user policy) keeps the user policy a plain, index-friendly compare.</summary>
    public static string UserAdminRole(string id) => $"proj_{id}_user_admin";

    public const string AnonKeyPrefix = "anon_";
    public const string ApiKeyPrefix = "dak_";

    public static string NewAnonKey() => AnonKeyPrefix + RandomToken(32);
    public static string NewApiKey() => ApiKeyPrefix + RandomToken(32);
    /// <summary>Letters and digits only, so the password goes into a URL unescaped.</summary>
    public static string NewPassword() => RandomAlphanumeric(32);

    public static string RandomToken(int bytes) => Base64Url(RandomNumberGenerator.GetBytes(bytes));

    private static string RandomAlphanumeric(int length)
    {
        const string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        return RandomNumberGenerator.GetString(chars, length);
    }

    public static string Base64Url(ReadOnlySpan<byte> data) =>
        Convert.ToBase64String(data).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>SHA-256 (hex) of a high-entropy key, for lookup without decrypting.</summary>
    public static string KeyHash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
}
