// Platform signals cannot be replayed: a tenant's role can LISTEN on the platform's channel and NOTIFY what it heard;
// the payload is sealed (Data Protection), carries when it was sent and a nonce, and is acted on once, while fresh.
using DbStudio.Core.Platform;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace DbStudio.Tests.Unit;

public class PlatformSignalsTests
{
    private static readonly IDataProtectionProvider Keys = new EphemeralDataProtectionProvider();
    // Never opened: sealing and raising touch no database.
    private static readonly NpgsqlDataSource Nowhere = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1");

    private static (PlatformSignals Signals, List<string> Heard) Instance(TimeProvider clock)
    {
        var signals = new PlatformSignals(Nowhere, Keys, clock);
        var heard = new List<string>();
        signals.Received += (topic, project, detail) => heard.Add($"{topic}:{project}:{detail}");
        return (signals, heard);
    }

    [Fact]
    public void Another_instance_acts_on_a_signal_once_and_ignores_replays()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-30T08:00:00Z"));
        var (sender, heardBySender) = Instance(clock);
        var (receiver, heard) = Instance(clock);
        var payload = sender.Seal(PlatformSignals.Topics.Keys, "k3x9", "");

        receiver.Raise(payload);
        Assert.Equal(["keys:k3x9:"], heard);
        receiver.Raise(payload); // overheard and sent again by a tenant
        receiver.Raise(payload);
        Assert.Single(heard);

        sender.Raise(payload); // the sender's own, coming back through the channel: acted on when sent
        Assert.Empty(heardBySender);
    }

    [Fact]
    public void A_stale_signal_is_ignored_even_by_an_instance_that_never_saw_it()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-30T08:00:00Z"));
        var (sender, _) = Instance(clock);
        var payload = sender.Seal(PlatformSignals.Topics.Project, "k3x9", "");
        clock.Advance(PlatformSignals.Lifetime + TimeSpan.FromSeconds(1));
        var (late, heard) = Instance(clock); // e.g. started after the nonces were forgotten
        late.Raise(payload);
        Assert.Empty(heard);

        // Nonces are forgotten only after they went stale: a replay in between is still refused.
        var (receiver, heardByReceiver) = Instance(clock);
        var fresh = sender.Seal(PlatformSignals.Topics.Access, "k3x9", "");
        receiver.Raise(fresh);
        clock.Advance(TimeSpan.FromSeconds(90));
        receiver.Raise(sender.Seal(PlatformSignals.Topics.Keys, "other", "")); // prunes
        receiver.Raise(fresh);
        Assert.Equal(["access:k3x9:", "keys:other:"], heardByReceiver);
    }

    [Fact]
    public void Forged_and_foreign_payloads_do_nothing()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-30T08:00:00Z"));
        var (receiver, heard) = Instance(clock);
        receiver.Raise("project:k3x9:");
        receiver.Raise("");
        receiver.Raise(new string('x', 5000));
        var foreign = new PlatformSignals(Nowhere, new EphemeralDataProtectionProvider(), clock); // another deployment's keys
        receiver.Raise(foreign.Seal(PlatformSignals.Topics.Project, "k3x9", ""));
        Assert.Empty(heard);
    }
}
