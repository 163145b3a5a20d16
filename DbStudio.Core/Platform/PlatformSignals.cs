// Cache invalidation between app instances: a change made through one instance (a rotated key, new access settings,
// a reset owner password) is announced with pg_notify on one channel, and every instance — this one included — drops
// what it cached. The change hub's LISTEN connection receives it (one listening connection per instance).
using Npgsql;

namespace DbStudio.Core.Platform;

public sealed class PlatformSignals(NpgsqlDataSource platform)
{
    public const string Channel = "dbstudio_platform";

    /// <summary>What changed, for which project: keys, access, owner.</summary>
    public static class Topics
    {
        public const string Keys = "keys";
        public const string Access = "access";
        public const string Owner = "owner";
    }

    /// <summary>Raised for every announcement, from any instance (on the listener's thread: keep handlers short).</summary>
    public event Action<string, string>? Received;

    /// <summary>Drops this instance's caches at once, then tells the others.</summary>
    public async Task PublishAsync(string topic, string projectId, CancellationToken ct = default)
    {
        Raise($"{topic}:{projectId}");
        await using var cmd = platform.CreateCommand("SELECT pg_notify($1, $2)");
        cmd.Parameters.Add(new() { Value = Channel });
        cmd.Parameters.Add(new() { Value = $"{topic}:{projectId}" });
        await cmd.ExecuteNonQueryAsync(ct);
    }

    internal void Raise(string payload)
    {
        var colon = payload.IndexOf(':');
        if (colon <= 0) return;
        Received?.Invoke(payload[..colon], payload[(colon + 1)..]);
    }
}
