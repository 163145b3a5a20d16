// Cache invalidation between app instances: a change made through one instance (a rotated key, new access settings,
// a reset owner password, a logout, a role change, a deleted project) is announced with pg_notify on one channel, and
// every instance — this one included — drops what it cached. PostgreSQL lets any role NOTIFY on any channel and
// LISTEN to any channel, so a payload is encrypted and authenticated with the platform's Data Protection keys (kept
// in the database, shared by every instance): a project's role can neither forge a signal nor read one (which
// project changed what).
using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;
using Npgsql;

namespace DbStudio.Core.Platform;

public sealed class PlatformSignals(NpgsqlDataSource platform, IDataProtectionProvider protection)
{
    public const string Channel = "dbstudio_platform";

    private readonly IDataProtector _protector = protection.CreateProtector("DbStudio.PlatformSignals.v1");

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
    }

    /// <summary>Raised for every announcement, from any instance (on the listener's thread: keep handlers short).
    /// Arguments: topic, project id, detail (or "").</summary>
    public event Action<string, string, string>? Received;

    /// <summary>Drops this instance's caches at once, then tells the others.</summary>
    public async Task PublishAsync(string topic, string projectId, CancellationToken ct = default, string detail = "")
    {
        var message = $"{topic}:{projectId}:{detail}";
        Deliver(message);
        await using var cmd = platform.CreateCommand("SELECT pg_notify($1, $2)");
        cmd.Parameters.Add(new() { Value = Channel });
        cmd.Parameters.Add(new() { Value = _protector.Protect(message) });
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>A notification from the channel: acted on only if an instance of this platform wrote it.</summary>
    public void Raise(string? payload)
    {
        if (string.IsNullOrEmpty(payload) || payload.Length > 4000) return;
        string message;
        try { message = _protector.Unprotect(payload); }
        catch (CryptographicException) { return; } // not ours: forged, or another deployment's
        Deliver(message);
    }

    private void Deliver(string message)
    {
        var parts = message.Split(':', 3);
        if (parts.Length == 3) Received?.Invoke(parts[0], parts[1], parts[2]);
    }
}
