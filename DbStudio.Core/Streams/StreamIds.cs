// Event ids that only mean something to the identity and table they were given to: "{change id}.{MAC}", the MAC an
// HMAC-SHA256 over (table OID, identity, change id) with a key of the project's, kept encrypted with its other
// secrets. EventSource echoes an id back as Last-Event-ID, so resuming works unchanged, while a made-up id, one given
// to another credential or another table (or a table dropped and made again under the same name), is refused: the
// change log is not a history API.
using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using DbStudio.Core.Platform;
using DbStudio.Core.Projects;
using Npgsql;

namespace DbStudio.Core.Streams;

public sealed class StreamIds(NpgsqlDataSource platform, SecretProtector protector)
{
    private readonly ConcurrentDictionary<string, Lazy<Task<byte[]>>> _keys = new();

    /// <summary>The project's MAC key (made on first use).</summary>
    public async Task<byte[]> KeyAsync(string projectId, CancellationToken ct)
    {
        var lazy = _keys.GetOrAdd(projectId, id => new Lazy<Task<byte[]>>(() => LoadAsync(id)));
        try { return await lazy.Value.WaitAsync(ct); }
        catch (Exception) when (lazy.Value.IsFaulted)
        {
            _keys.TryRemove(new KeyValuePair<string, Lazy<Task<byte[]>>>(projectId, lazy));
            throw;
        }
    }

    public void Forget(string projectId) => _keys.TryRemove(projectId, out _);

    /// <summary>The id a frame carries for change <paramref name="changeId"/> on this table for this identity.</summary>
    public static string Format(byte[] key, uint tableOid, StreamIdentity identity, long changeId) =>
        changeId.ToString(CultureInfo.InvariantCulture) + "." + Mac(key, tableOid, identity, changeId);

    /// <summary>The change id in <paramref name="eventId"/> if it was given to this identity on this table; else null.</summary>
    public static long? Verify(byte[] key, uint tableOid, StreamIdentity identity, string eventId)
    {
        var dot = eventId.IndexOf('.');
        if (dot <= 0 || eventId.Length > 64) return null;
        if (!long.TryParse(eventId.AsSpan(0, dot), NumberStyles.None, CultureInfo.InvariantCulture, out var id)) return null;
        var expected = Encoding.ASCII.GetBytes(Mac(key, tableOid, identity, id));
        var given = Encoding.ASCII.GetBytes(eventId[(dot + 1)..]);
        return CryptographicOperations.FixedTimeEquals(expected, given) ? id : null;
    }

    private static string Mac(byte[] key, uint tableOid, StreamIdentity identity, long changeId)
    {
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{tableOid}|{identity.MacKey}|{changeId}"), mac);
        return Convert.ToBase64String(mac[..16]).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    private async Task<byte[]> LoadAsync(string projectId)
    {
        await using var conn = await platform.OpenConnectionAsync();
        var fresh = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        // Made once per project; a concurrent maker's key wins and both read it back.
        await using (var insert = new NpgsqlCommand("""
            INSERT INTO platform.project_secrets ("ProjectId", "Kind", "Protected", "Hash", "CreatedAt")
            SELECT $1, $2, $3, NULL, now() WHERE EXISTS (SELECT 1 FROM platform.projects WHERE "Id" = $1)
            ON CONFLICT ("ProjectId", "Kind") DO NOTHING
            """, conn))
        {
            insert.Parameters.Add(new() { Value = projectId });
            insert.Parameters.Add(new() { Value = (int)ProjectSecretKind.StreamKey });
            insert.Parameters.Add(new() { Value = protector.Protect(fresh) });
            await insert.ExecuteNonQueryAsync();
        }
        await using var read = new NpgsqlCommand(
            """SELECT "Protected" FROM platform.project_secrets WHERE "ProjectId" = $1 AND "Kind" = $2""", conn);
        read.Parameters.Add(new() { Value = projectId });
        read.Parameters.Add(new() { Value = (int)ProjectSecretKind.StreamKey });
        var stored = await read.ExecuteScalarAsync() as string ?? throw new KeyNotFoundException($"project {projectId} does not exist");
        return Convert.FromBase64String(protector.Unprotect(stored));
    }
}
