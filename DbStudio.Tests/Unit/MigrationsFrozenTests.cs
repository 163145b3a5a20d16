// Migrations are frozen with their own SQL text (docs/architecture.md): the SQL each migration runs, up and down, is
// kept in Unit/Snapshots/Migrations.sql, one section per migration. A migration that starts to say something else —
// its text edited, or a constant of the running code it used changed since — fails here, since databases that already
// ran it would differ from new ones. A schema change goes into a new migration: DBSTUDIO_UPDATE_SNAPSHOTS=1 adds the new
// migration's section, and never rewrites an old one.
using System.Text;
using DbStudio.Core.Platform;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace DbStudio.Tests.Unit;

public class MigrationsFrozenTests
{
    private static Dictionary<string, string> Render()
    {
        using var db = new DesignTimeFactory().CreateDbContext([]);
        var assembly = db.GetService<IMigrationsAssembly>();
        var generator = db.GetService<IMigrationsSqlGenerator>();
        var sections = new Dictionary<string, string>();
        foreach (var (id, type) in assembly.Migrations)
        {
            var migration = assembly.CreateMigration(type, db.Database.ProviderName!);
            var sb = new StringBuilder();
            foreach (var (direction, operations) in new[] { ("up", migration.UpOperations), ("down", migration.DownOperations) })
            {
                sb.Append("-- ").Append(direction).Append('\n');
                foreach (var command in generator.Generate(operations))
                    sb.Append(command.CommandText.ReplaceLineEndings("\n").Trim()).Append('\n');
            }
            sections[id] = sb.ToString();
        }
        return sections;
    }

    /// <summary>The file's sections: a line `## {migration id}`, then what it runs.</summary>
    private static Dictionary<string, string> Parse(string text)
    {
        var sections = new Dictionary<string, string>();
        string? id = null;
        var sql = new StringBuilder();
        foreach (var line in text.ReplaceLineEndings("\n").Split('\n').Append("## "))
        {
            if (!line.StartsWith("## ", StringComparison.Ordinal)) { sql.Append(line).Append('\n'); continue; }
            if (id is not null) sections[id] = sql.ToString().TrimEnd('\n') + "\n";
            id = line[3..];
            sql.Clear();
        }
        return sections;
    }

    [Fact]
    public void Every_migration_runs_the_sql_it_ran_when_it_was_written()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "DbStudio.sln"))) dir = dir.Parent;
        var file = Path.Combine(dir!.FullName, "DbStudio.Tests", "Unit", "Snapshots", "Migrations.sql");
        var kept = File.Exists(file) ? Parse(File.ReadAllText(file)) : [];
        var actual = Render();

        if (Environment.GetEnvironmentVariable("DBSTUDIO_UPDATE_SNAPSHOTS") == "1")
        {
            // Only migrations not in the file yet are added.
            var added = actual.Keys.Where(id => !kept.ContainsKey(id)).ToList();
            if (added.Count > 0)
                File.AppendAllText(file, string.Concat(added.Select(id => $"## {id}\n{actual[id]}\n")));
            foreach (var id in added) kept[id] = actual[id];
        }

        Assert.True(kept.Count > 0, $"{file} is missing: generate it with DBSTUDIO_UPDATE_SNAPSHOTS=1 and review it");
        Assert.Equal(kept.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (id, sql) in actual)
            Assert.True(kept[id] == sql, $"migration {id} no longer runs the SQL it ran (a migration is frozen: change the schema in a new one)\n"
                                         + $"--- kept\n{kept[id]}\n--- now\n{sql}");
    }
}
