// The one LISTEN connection of an app instance (on the platform's login): it waits for notifications and routes each
// channel's to the handler registered for it — the change log's (the stream's dispatcher wakes up) and the platform's
// signals (caches drop what changed). Any role may NOTIFY on any channel, so handlers trust nothing in a payload:
// the change channel's carries nothing, and platform signals are encrypted and authenticated (PlatformSignals).
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace DbStudio.Core.Platform;

public sealed class PlatformListener(NpgsqlDataSource platform, ILogger<PlatformListener> log) : BackgroundService
{
    private readonly Dictionary<string, Action<string?>> _handlers = [];

    /// <summary>Whether the LISTEN connection is up (health checks).</summary>
    public bool Listening { get; private set; }

    /// <summary>Routes <paramref name="channel"/>'s notifications to <paramref name="handler"/> (called on the listener's
    /// thread: keep it short). After a reconnect each handler is called with null: notifications may have been missed.</summary>
    public void Route(string channel, Action<string?> handler)
    {
        if (!Sql.SqlText.SafeName().IsMatch(channel)) throw new ArgumentException("channel names are lowercase identifiers", nameof(channel));
        lock (_handlers) _handlers[channel] = handler;
    }

    protected override async Task ExecuteAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await using var conn = await platform.OpenConnectionAsync(stop);
                KeyValuePair<string, Action<string?>>[] handlers;
                lock (_handlers) handlers = [.. _handlers];
                conn.Notification += (_, e) =>
                {
                    Action<string?>? handler;
                    lock (_handlers) handler = _handlers.GetValueOrDefault(e.Channel);
                    try { handler?.Invoke(e.Payload); }
                    catch (Exception ex) { log.LogWarning("Handling a notification on {Channel} failed: {Message}", e.Channel, ex.Message); }
                };
                if (handlers.Length > 0)
                {
                    await using var cmd = new NpgsqlCommand(string.Join("; ", handlers.Select(h => "LISTEN " + h.Key)), conn);
                    await cmd.ExecuteNonQueryAsync(stop);
                }
                Listening = true;
                foreach (var h in handlers) h.Value(null);
                while (!stop.IsCancellationRequested) await conn.WaitAsync(stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { break; }
            catch (Exception e)
            {
                if (Listening) log.LogWarning("The notification listener lost its connection ({Message}); reconnecting", e.Message);
                Listening = false;
                try { await Task.Delay(500, stop); } catch (OperationCanceledException) { break; }
            }
        }
        Listening = false;
    }
}
