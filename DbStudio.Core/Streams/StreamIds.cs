// Event ids that only mean something to the identity and table they were given to, and say nothing else: one AES
// block holding the change id and a tag (HMAC-SHA256 over table OID, identity and change id, cut to 8 bytes), both
// keys derived from a key of the project's kept encrypted with its other secrets; 22 base64url characters. The change
// log's positions are project-wide, so a readable counter would tell a subscriber of one table how often the
// project's other (private) tables change — encrypted, ids show nothing but themselves. EventSource echoes an id
// back as Last-Event-ID, so resuming works unchanged, while a made-up id, one given to another credential or another
// table (or a table dropped and made again under the same name), is refused: the change log is not a history API.
using System.Collections.Concurrent;
using System.Buffers.Text;
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

    /// <summary>The OIDs a table had before its project was moved to another server (ids given out then still resume).</summary>
    public async Task<uint[]> PreviousOidsAsync(string projectId, uint tableOid, CancellationToken ct)
    {
        await using var cmd = platform.CreateCommand("SELECT old_oid FROM platform.table_moves WHERE project_id = $1 AND new_oid = $2");
        cmd.Parameters.Add(new NpgsqlParameter { Value = projectId });
        cmd.Parameters.Add(new NpgsqlParameter { Value = tableOid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
        var oids = new List<uint>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) oids.Add(r.GetFieldValue<uint>(0));
        return [.. oids];
    }

    /// <summary>The id a frame carries for change <paramref name="changeId"/> on this table for this identity.</summary>
    public static string Format(byte[] key, uint tableOid, StreamIdentity identity, long changeId)
    {
        Span<byte> block = stackalloc byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(block, changeId);
        Tag(key, tableOid, identity, changeId, block[8..]);
        Span<byte> sealedBlock = stackalloc byte[16];
        Cipher(key).EncryptEcb(block, sealedBlock, PaddingMode.None);
        return Base64Url.EncodeToString(sealedBlock);
    }

    /// <summary>The change id in <paramref name="eventId"/> if it was given to this identity on this table; else null.</summary>
    public static long? Verify(byte[] key, uint tableOid, StreamIdentity identity, string eventId)
    {
        if (Open(key, eventId) is not var (changeId, tag)) return null;
        Span<byte> expected = stackalloc byte[8];
        Tag(key, tableOid, identity, changeId, expected);
        return CryptographicOperations.FixedTimeEquals(expected, tag) ? changeId : null;
    }

    /// <summary>
    /// The change id inside an id, without checking whom it was given to: for tests and diagnostics (ids are ordered
    /// and without gaps per table and identity only when read this way, with the project's key).
    /// </summary>
    public static long? ChangeOf(byte[] key, string eventId) => Open(key, eventId)?.ChangeId;

    private static (long ChangeId, byte[] Tag)? Open(byte[] key, string eventId)
    {
        if (eventId.Length != 22) return null;
        Span<byte> sealedBlock = stackalloc byte[16];
        if (!Base64Url.TryDecodeFromChars(eventId, sealedBlock, out var n) || n != 16) return null;
        Span<byte> block = stackalloc byte[16];
        Cipher(key).DecryptEcb(sealedBlock, block, PaddingMode.None);
        return (System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(block), block[8..].ToArray());
    }

    private static void Tag(byte[] key, uint tableOid, StreamIdentity identity, long changeId, Span<byte> tag)
    {
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{tableOid}|{identity.MacKey}|{changeId}"), mac);
        mac[..8].CopyTo(tag);
    }

    // One AES instance per project key and thread (instances are not thread-safe; making one per frame costs more than
    // the encryption). The AES key is derived from the project's key, so the MAC and the cipher never share a key.
    [ThreadStatic] private static Dictionary<byte[], Aes>? _ciphers;

    private static Aes Cipher(byte[] key)
    {
        _ciphers ??= new Dictionary<byte[], Aes>(ReferenceEqualityComparer.Instance);
        if (_ciphers.TryGetValue(key, out var aes)) return aes;
        if (_ciphers.Count >= 64)
        {
            foreach (var old in _ciphers.Values) old.Dispose();
            _ciphers.Clear();
        }
        aes = Aes.Create();
        aes.Key = HMACSHA256.HashData(key, "dbstudio stream id cipher"u8);
        return _ciphers[key] = aes;
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
