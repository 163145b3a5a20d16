// The folders of DbStudio.Core and the folders each may use (docs/architecture.md draws them). A folder that starts
// using one it must not — a cycle, or a lower layer reaching up — fails the build's tests here, with the file named.
using System.Text.RegularExpressions;

namespace DbStudio.Tests.Unit;

public class ArchitectureTests
{
    /// <summary>Each Core folder and the Core folders it may use (bottom to top).</summary>
    public static readonly IReadOnlyDictionary<string, string[]> Allowed = new Dictionary<string, string[]>
    {
        ["Sql"] = [],
        ["RateLimiting"] = [],
        ["Platform"] = ["Sql"],
        ["Postgres"] = ["Sql"],
        ["Limits"] = ["Platform", "Sql", "RateLimiting"],
        ["Projects"] = ["Limits", "Platform", "Sql", "RateLimiting"],
        ["Catalog"] = ["Platform", "Projects", "Sql"],
        ["Auth"] = ["Platform", "Projects", "Sql", "RateLimiting"],
        ["Access"] = ["Catalog", "Platform", "Projects", "Sql"],
        ["Rest"] = ["Access", "Auth", "Catalog", "Platform", "Projects", "Sql"],
        ["Streams"] = ["Auth", "Catalog", "Platform", "Projects", "Rest", "Sql"],
        ["Console"] = ["Access", "Auth", "Catalog", "Platform", "Projects", "Rest", "Sql", "Streams"],
        ["Csv"] = ["Catalog", "Projects", "Rest", "Sql"],
        ["Schema"] = ["Access", "Catalog", "Console", "Csv", "Projects", "Rest", "Sql", "Streams"],
        ["Panel"] = ["Access", "Auth", "Catalog", "Platform", "Projects", "Rest", "Sql", "Streams"],
        ["Assistant"] = ["Access", "Catalog", "Console", "Platform", "Projects", "Schema", "Sql"],
        ["Servers"] = ["Platform", "Postgres", "Projects", "Sql", "Streams"],
    };

    private static string CoreDirectory()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "DbStudio.sln"))) dir = dir.Parent;
        return Path.Combine(dir?.FullName ?? throw new DirectoryNotFoundException("DbStudio.sln not found above the test binaries"), "DbStudio.Core");
    }

    [Fact]
    public void Every_folder_of_core_uses_only_the_folders_below_it()
    {
        var core = CoreDirectory();
        var folders = Directory.GetDirectories(core).Select(Path.GetFileName).Where(f => f is not ("bin" or "obj")).ToList();
        Assert.All(folders, f => Assert.True(Allowed.ContainsKey(f!), $"Core/{f} is not in the architecture (add it to Allowed and docs/architecture.md)"));
        var reference = new Regex(@"DbStudio\.Core\.(\w+)|(?<![\w.])(" + string.Join("|", folders) + @")\.[A-Z]\w*");
        var problems = new List<string>();
        foreach (var folder in folders)
            foreach (var file in Directory.EnumerateFiles(Path.Combine(core, folder!), "*.cs", SearchOption.AllDirectories))
            {
                var lines = File.ReadAllLines(file);
                for (var i = 0; i < lines.Length; i++)
                {
                    var code = lines[i].Split("//")[0];
                    foreach (Match m in reference.Matches(code))
                    {
                        var used = m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value;
                        if (used == folder || !Allowed.ContainsKey(used)) continue;
                        if (!Allowed[folder!].Contains(used))
                            problems.Add($"{Path.GetRelativePath(core, file)}:{i + 1} uses {used} (Core/{folder} may use {string.Join(", ", Allowed[folder!])})");
                    }
                }
            }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void The_allowed_uses_have_no_cycle()
    {
        var state = new Dictionary<string, int>();
        bool Cyclic(string n)
        {
            if (state.GetValueOrDefault(n) == 1) return true;
            if (state.GetValueOrDefault(n) == 2) return false;
            state[n] = 1;
            if (Allowed[n].Any(Cyclic)) return true;
            state[n] = 2;
            return false;
        }
        Assert.DoesNotContain(Allowed.Keys, Cyclic);
    }
}
