// Cache invalidation between app instances: a change made through one instance (a rotated key, new access settings,
// a reset owner password, a logout, a role change, a deleted project) is announced with pg_notify on one channel, and
// every instance — this one included — drops what it cached. PostgreSQL lets any role NOTIFY on any channel and
// LISTEN to any channel, so a payload is encrypted and authenticated with the platform's Data Protection keys (kept
// in the database, shared by every instance): a project's role can neither forge a signal nor read one (which
// project changed what). Nor can it replay one it overheard: each carries when it was sent and a nonce, and is acted on
// once, within its lifetime. Nor can it make an instance read the key ring for each payload it makes up (Data Protection
// reads it again, from the database, for a key id it does not know): a payload naming a key the platform does not have
// is dropped before it is opened, and the ring is looked at again for an unknown key at most twice a minute.
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Npgsql;

namespace DbStudio.Core.Platform;

public sealed class PlatformSignals(NpgsqlDataSource platform, IDataProtectionProvider protection, TimeProvider clock,
    IKeyManager? keyRing = null)
{
    public const string Channel = "dbstudio_platform";
    /// <summary>How long a signal may take to arrive (instances' clocks may differ by part of it); older ones are ignored.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(2);

    private readonly IDataProtector _protector = protection.CreateProtector("DbStudio.PlatformSignals.v2");
    /// <summary>Nonces acted on (or sent) within the lifetime, with when they were seen.</summary>
    private readonly ConcurrentDictionary<string, DateTimeOffset> _seen = new();
    private DateTimeOffset _pruned = DateTimeOffset.MinValue;

    /// <summary>What changed, for which project.</summary>
    public static class Topics
    {
        public const string Keys = "keys";
        public const string Access = "access";
        public const string Owner = "owner";
        /// <summary>One end-user session ended (detail: the access token's hash).</summary>
        public const string Session = "session";
        /// <summary>An end user's role changed or the user was deleted (detail: the user's id).</summary>
        public const string EndUser = "enduser";
        /// <summary>The project was deleted.</summary>
        public const string Project = "project";
        /// <summary>The project is being moved to another server: its requests wait (ProjectServers).</summary>
        public const string Moving = "moving";
        /// <summary>The project's move ended (on its new server, or given up): caches, pools and streams of it start over.</summary>
        public const string Moved = "moved";
    }

    /// <summary>Raised for every announcement, from any instance (on the listener's thread: keep handlers short).
    /// Arguments: topic, project id, detail (or "").</summary>
    public event Action<string, string, string>? Received;

    /// <summary>Drops this instance's caches at once, then tells the others.</summary>
    public async Task PublishAsync(string topic, string projectId, CancellationToken ct = default, string detail = "")
    {
        var payload = Seal(topic, projectId, detail);
        Received?.Invoke(topic, projectId, detail);
        await using var cmd = platform.CreateCommand("SELECT pg_notify($1, $2)");
        cmd.Parameters.Add(new() { Value = Channel });
        cmd.Parameters.Add(new() { Value = payload });
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>The notification payload of a signal: sent now, with a fresh nonce (marked seen here: our own comes
    /// back through the channel and was already acted on), encrypted and authenticated.</summary>
    internal string Seal(string topic, string projectId, string detail)
    {
        var now = clock.GetUtcNow();
        var nonce = Convert.ToHexString(RandomNumberGenerator.GetBytes(12));
        _seen[nonce] = now;
        return _protector.Protect($"{now.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)}:{nonce}:{topic}:{projectId}:{detail}");
    }

    /// <summary>A notification from the channel: acted on only if an instance of this platform wrote it, recently, and
    /// only the first time it arrives.</summary>
    public void Raise(string? payload)
    {
        if (string.IsNullOrEmpty(payload) || payload.Length > 4000 || !NamesAKeyOfOurs(payload)) return;
        string message;
        try { message = _protector.Unprotect(payload); }
        catch (CryptographicException) { return; } // not ours: forged, or another deployment's
        var parts = message.Split(':', 5);
        if (parts.Length != 5 || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var sentMs)) return;
        var now = clock.GetUtcNow();
        if ((now - DateTimeOffset.FromUnixTimeMilliseconds(sentMs)).Duration() > Lifetime) return; // stale: a replay
        Prune(now);
        if (!_seen.TryAdd(parts[1], now)) return; // seen: a replay (or our own)
        Received?.Invoke(parts[2], parts[3], parts[4]);
    }

    /// <summary>The key ids of the platform's key ring, as last read (null: not read yet), and when.</summary>
    private volatile HashSet<Guid>? _keyIds;
    private DateTimeOffset _keysRead = DateTimeOffset.MinValue;
    private readonly Lock _keysLock = new();
    /// <summary>How often an unknown key id may have the key ring read again (a new key made by another instance).</summary>
    internal static readonly TimeSpan KeyRingRereadEvery = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Whether the payload is sealed with a key of this platform's ring: Data Protection's payload begins with its magic
    /// header and the key's id. Checked before opening it, so that one made up with an unknown key id costs a set lookup.
    /// </summary>
    private bool NamesAKeyOfOurs(string payload)
    {
        if (keyRing is null) return true;
        Span<byte> head = stackalloc byte[21];
        if (payload.Length < 28
            || Base64Url.DecodeFromChars(payload.AsSpan(0, 28), head, out _, out var written) != System.Buffers.OperationStatus.Done
            || written != 21) return false; // not base64url: not Data Protection's
        if (head[0] != 0x09 || head[1] != 0xF0 || head[2] != 0xC9 || head[3] != 0xF0) return false;
        var id = new Guid(head.Slice(4, 16));
        if (_keyIds?.Contains(id) == true) return true;
        var now = clock.GetUtcNow();
        lock (_keysLock)
        {
            if (_keyIds?.Contains(id) == true) return true;
            if (_keyIds is not null && now - _keysRead < KeyRingRereadEvery) return false;
            _keysRead = now;
            _keyIds = [.. keyRing.GetAllKeys().Select(k => k.KeyId)];
            return _keyIds.Contains(id);
        }
    }

    /// <summary>Forgets nonces older than twice the lifetime (a replay of those is stale anyway), at most once a minute.</summary>
    private void Prune(DateTimeOffset now)
    {
        if (now - _pruned < TimeSpan.FromMinutes(1)) return;
        _pruned = now;
        foreach (var (nonce, seen) in _seen)
            if (now - seen > 2 * Lifetime) _seen.TryRemove(nonce, out _);
    }
}
