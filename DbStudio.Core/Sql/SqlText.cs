// The one place where names become SQL text: identifiers are always quoted, literals only for the
// few utility statements PostgreSQL cannot parameterise (role passwords), and then only checked values.
using System.Text;
using System.Text.RegularExpressions;

namespace DbStudio.Core.Sql;

public static partial class SqlText
{
    /// <summary>Quotes an identifier the way PostgreSQL's quote_ident does, always: "na""me".</summary>
    public static string Ident(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name.Contains('\0')) throw new ArgumentException("identifier contains NUL", nameof(name));
        return "\"" + name.Replace("\"", "\"\"") + "\"";
    }

    /// <summary>schema.name, both quoted.</summary>
    public static string Qualified(string schema, string name) => Ident(schema) + "." + Ident(name);

    /// <summary>
    /// A string literal for utility statements that take no parameters (CREATE/ALTER ROLE … PASSWORD).
    /// Standard-conforming quoting; refuses anything but printable ASCII so no encoding trick applies.
    /// </summary>
    public static string Literal(string value)
    {
        foreach (var c in value)
            if (c < 0x20 || c > 0x7e) throw new ArgumentException("literal must be printable ASCII", nameof(value));
        return "'" + value.Replace("'", "''") + "'";
    }

    [GeneratedRegex("^[a-z][a-z0-9_]{0,62}$")]
    public static partial Regex SafeName();
}

/// <summary>Builds a SCRAM-SHA-256 verifier client-side, as psql's \password does: the server never sees the password.</summary>
public static class Scram
{
    public static string Verifier(string password, int iterations = 4096)
    {
        var salt = System.Security.Cryptography.RandomNumberGenerator.GetBytes(16);
        var salted = System.Security.Cryptography.Rfc2898DeriveBytes.Pbkdf2(
            Encoding.UTF8.GetBytes(password), salt, iterations, System.Security.Cryptography.HashAlgorithmName.SHA256, 32);
        var clientKey = System.Security.Cryptography.HMACSHA256.HashData(salted, "Client Key"u8);
        var storedKey = System.Security.Cryptography.SHA256.HashData(clientKey);
        var serverKey = System.Security.Cryptography.HMACSHA256.HashData(salted, "Server Key"u8);
        return $"SCRAM-SHA-256${iterations}:{Convert.ToBase64String(salt)}${Convert.ToBase64String(storedKey)}:{Convert.ToBase64String(serverKey)}";
    }
}
